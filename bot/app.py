"""Builds the python-telegram-bot Application and owns its long-lived resources."""

from __future__ import annotations

import logging
from datetime import UTC, timedelta
from typing import Any

from telegram import BotCommand, LinkPreviewOptions
from telegram.constants import ParseMode
from telegram.ext import Application, ApplicationBuilder, ContextTypes, Defaults
from telegram.request import BaseRequest

from bot import handlers
from bot.clock import Clock
from bot.config import Settings, require_token
from bot.content import Content
from bot.db import migrate
from bot.db.engine import create_engine, create_sessionmaker
from bot.delivery.engine import DeliveryEngine
from bot.delivery.ratelimit import RateBudget
from bot.delivery.sender import Sender
from bot.runtime import RUNTIME_KEY, Runtime, get_runtime
from bot.services.zones import ZoneDirectory

logger = logging.getLogger(__name__)

BotApplication = Application[Any, Any, Any, Any, Any, Any]


def bot_commands(content: Content) -> list[BotCommand]:
    """The command menu Telegram shows, in /help order."""
    return [BotCommand(c.command, c.description) for c in content.commands()]


async def delivery_tick(context: ContextTypes.DEFAULT_TYPE) -> None:
    """The one repeating job: let the delivery engine claim what is due."""
    report = await get_runtime(context.application).delivery.tick()
    if report.claimed or report.skipped:
        logger.info("claimed %d deliveries, skipped %d late ones", report.claimed, report.skipped)


async def start_resources(application: BotApplication) -> None:
    """Open the database (migrating it), start delivery, and register the command menu."""
    settings: Settings = application.bot_data["settings"]
    content: Content = application.bot_data["content"]
    engine = create_engine(settings.database_url)
    await migrate.upgrade(engine)
    sessions = create_sessionmaker(engine)
    clock = Clock()
    delivery = DeliveryEngine(
        sessions=sessions,
        content=content,
        sender=Sender(application.bot, RateBudget(settings.delivery_rate_per_second)),
        batch_size=settings.delivery_batch_size,
        catchup=timedelta(hours=settings.delivery_catchup_hours),
        clock=clock,
    )
    application.bot_data[RUNTIME_KEY] = Runtime(
        settings=settings,
        content=content,
        engine=engine,
        sessions=sessions,
        delivery=delivery,
        zones=ZoneDirectory.load(settings.content_dir / "places.yml"),
        clock=clock,
    )
    await delivery.start()
    if application.job_queue is not None:
        application.job_queue.run_repeating(
            delivery_tick,
            interval=settings.delivery_tick_seconds,
            first=1.0,
            name="delivery-tick",
            job_kwargs={"max_instances": 1, "coalesce": True, "misfire_grace_time": None},
        )
    await application.bot.set_my_commands(bot_commands(content))
    logger.info("BackCalm is up as @%s", application.bot.username)


async def stop_delivery(application: BotApplication) -> None:
    """Stop sending before the bot shuts down; sent messages are recorded."""
    runtime = application.bot_data.get(RUNTIME_KEY)
    if isinstance(runtime, Runtime):
        await runtime.delivery.stop()


async def stop_resources(application: BotApplication) -> None:
    """Close what start_resources opened."""
    runtime = application.bot_data.pop(RUNTIME_KEY, None)
    if isinstance(runtime, Runtime):
        await runtime.delivery.stop()
        await runtime.engine.dispose()


def build_application(
    settings: Settings,
    content: Content,
    *,
    request: BaseRequest | None = None,
    get_updates_request: BaseRequest | None = None,
) -> BotApplication:
    """The Application with every handler; resources open in post_init."""
    builder = (
        ApplicationBuilder()
        .token(require_token(settings))
        .base_url(settings.telegram_api_base_url)
        .base_file_url(settings.telegram_api_base_file_url)
        .defaults(
            Defaults(
                tzinfo=UTC,
                parse_mode=ParseMode.HTML,
                link_preview_options=LinkPreviewOptions(is_disabled=True),
            )
        )
        .post_init(start_resources)
        .post_stop(stop_delivery)
        .post_shutdown(stop_resources)
    )
    if request is not None:
        builder = builder.request(request)
    if get_updates_request is not None:
        builder = builder.get_updates_request(get_updates_request)
    application = builder.build()
    application.bot_data["settings"] = settings
    application.bot_data["content"] = content
    handlers.register(application, list(content.topics))
    return application


__all__ = ["BotApplication", "build_application", "get_runtime"]
