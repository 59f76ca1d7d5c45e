"""The design the delivery engine replaced: one `JobQueue.run_daily` job per subscriber.

Run as `python -m tests.benchmarks.run_daily_baseline` with the bot's environment variables
(TELEGRAM_BOT_TOKEN, TELEGRAM_API_BASE_URL, DATABASE_URL). It loads the content like the bot
does, builds a python-telegram-bot Application with the bot's defaults, reads every active
daily schedule (user, local time, zone) from the database, schedules one daily job per user at
that local time in that zone, and starts polling. The start-up benchmark times it from spawn
to its first getUpdates, exactly like `python -m bot`.

It is a lower bound of the old design: no handlers are registered and no migrations run.
"""

from __future__ import annotations

import logging
import random
import sys
import time
from datetime import UTC
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from telegram import LinkPreviewOptions
from telegram.constants import ParseMode
from telegram.ext import Application, ApplicationBuilder, CallbackContext, Defaults, ExtBot

from bot.config import Settings, load_settings, require_token
from bot.content import Content, load_content
from bot.db.engine import create_engine
from bot.db.models import Schedule, ScheduleKind
from bot.logs import configure_logging
from bot.views import tip_view

logger = logging.getLogger("run_daily_baseline")

Context = CallbackContext[ExtBot[None], dict[Any, Any], dict[Any, Any], dict[Any, Any]]
BaselineApplication = Application[Any, Any, Any, Any, Any, Any]


async def send_daily_tip(context: Context) -> None:
    """What each job did: pick a tip and send it."""
    job = context.job
    if job is None or job.chat_id is None:
        return
    content: Content = context.application.bot_data["content"]
    tip = random.choice(list(content.tips.values()))
    view = tip_view(content, tip)
    await context.bot.send_message(job.chat_id, view.text, reply_markup=view.markup)


async def schedule_everyone(application: BaselineApplication) -> None:
    """post_init: read every daily schedule and give each user a run_daily job."""
    settings: Settings = application.bot_data["settings"]
    started = time.perf_counter()
    engine = create_engine(settings.database_url)
    try:
        async with engine.connect() as connection:
            result = await connection.execute(
                select(Schedule.user_id, Schedule.local_time, Schedule.timezone).where(
                    Schedule.active.is_(True), Schedule.kind == ScheduleKind.DAILY_TIP
                )
            )
            rows = result.all()
    finally:
        await engine.dispose()
    read = time.perf_counter() - started
    job_queue = application.job_queue
    if job_queue is None:
        raise RuntimeError("python-telegram-bot[job-queue] is needed")
    # Started here so every job is really in the scheduler before polling begins.
    await job_queue.start()
    for user_id, local_time, zone in rows:
        job_queue.run_daily(
            send_daily_tip,
            time=local_time.replace(tzinfo=ZoneInfo(zone)),
            chat_id=user_id,
            user_id=user_id,
            name=f"daily-tip-{user_id}",
        )
    logger.info(
        "run_daily baseline: read %d schedules in %.2f s, scheduled %d jobs in %.2f s",
        len(rows),
        read,
        len(rows),
        time.perf_counter() - started - read,
    )


def main() -> int:
    settings = load_settings()
    token = require_token(settings)
    configure_logging(settings.log_level, secrets=[token])
    content = load_content(settings.content_dir)
    application = (
        ApplicationBuilder()
        .token(token)
        .base_url(settings.telegram_api_base_url)
        .defaults(
            Defaults(
                tzinfo=UTC,
                parse_mode=ParseMode.HTML,
                link_preview_options=LinkPreviewOptions(is_disabled=True),
            )
        )
        .post_init(schedule_everyone)
        .build()
    )
    application.bot_data["settings"] = settings
    application.bot_data["content"] = content
    application.run_polling(allowed_updates=["message", "callback_query", "my_chat_member"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
