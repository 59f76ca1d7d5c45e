"""Builds the python-telegram-bot Application and owns its long-lived resources."""

from __future__ import annotations

import asyncio
import fcntl
import logging
import signal
from datetime import UTC, timedelta
from pathlib import Path
from typing import IO, Any, Literal

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from telegram import BotCommand, LinkPreviewOptions
from telegram.constants import ParseMode
from telegram.ext import Application, ApplicationBuilder, ContextTypes, Defaults
from telegram.request import BaseRequest, HTTPXRequest

from bot import handlers, metrics
from bot.clock import Clock
from bot.config import ConfigError, Settings, require_token
from bot.content import Content
from bot.crypto import KeyringHolder, KeySource, check_keyring
from bot.db import migrate
from bot.db.engine import create_engine, create_sessionmaker, sqlite_file, unit_of_work
from bot.delivery.engine import DeliveryEngine
from bot.delivery.ratelimit import RateBudget, TelegramRateLimiter, global_limit
from bot.delivery.sender import Sender
from bot.metrics import MeasuredApplication
from bot.runtime import RUNTIME_KEY, Runtime, get_runtime
from bot.services import checkins, privacy
from bot.services.checkin_writer import CheckinWriter
from bot.services.zones import ZoneDirectory

logger = logging.getLogger(__name__)

BotApplication = Application[Any, Any, Any, Any, Any, Any]
Role = Literal["all", "updates", "delivery"]
ROLES: tuple[Role, ...] = ("all", "updates", "delivery")


class SingleDeliveryWorker:
    """On SQLite only one process may run the delivery engine: an exclusive lock file."""

    def __init__(self, database: Path) -> None:
        self.path = database.with_name(database.name + ".delivery.lock")
        self._handle: IO[str] | None = None

    def acquire(self) -> None:
        handle = self.path.open("a")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            raise ConfigError(
                "DATABASE_URL: another delivery worker already runs on this SQLite database; "
                "run one delivery worker per SQLite database, or move to PostgreSQL to run "
                "several (see README, 'Scaling out')"
            ) from None
        self._handle = handle

    def release(self) -> None:
        if self._handle is not None:
            fcntl.flock(self._handle, fcntl.LOCK_UN)
            self._handle.close()
            self._handle = None


def bot_commands(content: Content) -> list[BotCommand]:
    """The command menu Telegram shows, in /help order."""
    return [BotCommand(c.command, c.description) for c in content.commands()]


async def delivery_tick(context: ContextTypes.DEFAULT_TYPE) -> None:
    """The one repeating job: let the delivery engine claim what is due."""
    with metrics.TICK_SECONDS.time():
        report = await get_runtime(context.application).delivery.tick()
    if report.claimed or report.skipped:
        logger.info("claimed %d deliveries, skipped %d late ones", report.claimed, report.skipped)


async def open_keys(
    settings: Settings, sessions: async_sessionmaker[AsyncSession]
) -> KeyringHolder:
    """The data keys; refuses (KeyConfigError) a keyring that cannot read the stored data."""
    secret = settings.data_encryption_key
    holder, source = KeyringHolder.load(
        secret.get_secret_value() if secret else None, settings.key_file()
    )
    if source is KeySource.CREATED:
        logger.warning(
            "created a new data key in %s; keep a copy apart from the database backups "
            "(or set DATA_ENCRYPTION_KEY)",
            settings.key_file(),
        )
    async with sessions() as session:
        check_keyring(holder.get(), await checkins.key_ids_in_use(session))
    return holder


RETENTION_INTERVAL = timedelta(hours=6)
LOCK_KEY = "delivery_lock"
PREPARED_KEY = "database_prepared"
KEYRING_KEY = "prepared_keyring"


async def retention_job(context: ContextTypes.DEFAULT_TYPE) -> None:
    """Delete check-ins and delivery records that are past their retention periods."""
    runtime = get_runtime(context.application)
    settings = runtime.settings
    async with unit_of_work(runtime.sessions) as session:
        purged = await privacy.purge_old(
            session,
            runtime.clock.now(),
            settings.checkin_retention_days,
            settings.delivery_retention_days,
        )
    if any(purged):
        logger.info("retention: deleted %d check-ins and %d delivery records", *purged)


async def start_resources(application: BotApplication) -> None:
    """Open the database (migrating it), start delivery, and register the command menu."""
    settings: Settings = application.bot_data["settings"]
    content: Content = application.bot_data["content"]
    engine = create_engine(settings.database_url)
    if not application.bot_data.get(PREPARED_KEY):  # `python -m bot` migrated already
        await migrate.upgrade(engine)
    sessions = create_sessionmaker(engine)
    keys = application.bot_data.get(KEYRING_KEY)
    if not isinstance(keys, KeyringHolder):  # `python -m bot` opened and checked them already
        keys = await open_keys(settings, sessions)
    writer = CheckinWriter(sessions, keys.get)
    clock = Clock()
    delivery = DeliveryEngine(
        sessions=sessions,
        content=content,
        sender=Sender(application.bot, RateBudget(settings.delivery_rate_per_second)),
        batch_size=settings.delivery_batch_size,
        catchup=timedelta(hours=settings.delivery_catchup_hours),
        clock=clock,
        keys=keys,
    )
    application.bot_data[RUNTIME_KEY] = Runtime(
        settings=settings,
        content=content,
        engine=engine,
        sessions=sessions,
        delivery=delivery,
        zones=ZoneDirectory.load(settings.content_dir / "places.yml"),
        clock=clock,
        keys=keys,
        checkin_writer=writer,
    )
    writer.start()
    role: Role = application.bot_data.get("role", "all")
    if settings.metrics_port is not None:
        metrics.serve(settings.metrics_port)
    if role == "updates":
        await application.bot.set_my_commands(bot_commands(content))
        logger.info("BackCalm is up as @%s (answering updates only)", application.bot.username)
        return
    database = sqlite_file(settings.database_url)
    if database is not None:
        lock = SingleDeliveryWorker(database)
        lock.acquire()
        application.bot_data[LOCK_KEY] = lock
    else:
        delivery.single_worker = False
    await delivery.start()
    if application.job_queue is not None:
        application.job_queue.run_repeating(
            delivery_tick,
            interval=settings.delivery_tick_seconds,
            first=1.0,
            name="delivery-tick",
            job_kwargs={"max_instances": 1, "coalesce": True, "misfire_grace_time": None},
        )
        application.job_queue.run_repeating(
            retention_job, interval=RETENTION_INTERVAL, first=30.0, name="retention"
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
        await runtime.checkin_writer.stop()
        await runtime.engine.dispose()
    lock = application.bot_data.pop(LOCK_KEY, None)
    if isinstance(lock, SingleDeliveryWorker):
        lock.release()


def build_application(
    settings: Settings,
    content: Content,
    *,
    role: Role = "all",
    request: BaseRequest | None = None,
    get_updates_request: BaseRequest | None = None,
) -> BotApplication:
    """The Application with every handler; resources open in post_init.

    `role`: "all" answers people and runs the delivery engine; "updates" only answers;
    "delivery" only runs the engine (the caller then does not poll).
    """
    builder = (
        ApplicationBuilder()
        .application_class(MeasuredApplication)
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
    if request is None or get_updates_request is None:
        # One TLS context for both connections: each would otherwise read certifi's CA bundle
        # again (about 30 ms on a slow machine). The pool sizes are PTB's defaults.
        tls = httpx.create_ssl_context()
        request = request or HTTPXRequest(connection_pool_size=256, httpx_kwargs={"verify": tls})
        get_updates_request = get_updates_request or HTTPXRequest(
            connection_pool_size=1, httpx_kwargs={"verify": tls}
        )
    builder = builder.request(request).get_updates_request(get_updates_request)
    limit = global_limit(settings.telegram_global_rate, settings.delivery_rate_per_second)
    if limit:  # every message under Telegram's limits, replies before the broadcast
        builder = builder.rate_limiter(TelegramRateLimiter(limit))
    application = builder.build()
    application.bot_data["settings"] = settings
    application.bot_data["content"] = content
    application.bot_data["role"] = role
    handlers.register(application, list(content.topics))
    return application


async def serve_without_updates(application: BotApplication) -> None:
    """Run the delivery engine and jobs without fetching updates, until SIGTERM or SIGINT."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    await application.initialize()
    try:
        if application.post_init is not None:
            await application.post_init(application)
        await application.start()
        logger.info("delivering; stop with SIGTERM")
        await stop.wait()
        await application.stop()
        if application.post_stop is not None:
            await application.post_stop(application)
    finally:
        await application.shutdown()
        if application.post_shutdown is not None:
            await application.post_shutdown(application)


__all__ = ["BotApplication", "build_application", "get_runtime", "serve_without_updates"]
