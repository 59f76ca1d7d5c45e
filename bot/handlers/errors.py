"""The error handler: log with the traceback, tell the user something short and kind."""

from __future__ import annotations

import logging

from telegram import Update
from telegram.error import TelegramError

from bot.handlers.common import Context, text
from bot.runtime import RUNTIME_KEY, Runtime

logger = logging.getLogger(__name__)


async def on_error(update: object, context: Context) -> None:
    """Log the failure; apologise to the user if there is one to tell."""
    logger.error(
        "update %s failed",
        update.update_id if isinstance(update, Update) else "-",
        exc_info=context.error,
    )
    runtime = context.application.bot_data.get(RUNTIME_KEY)
    if isinstance(runtime, Runtime):
        runtime.errors.append((runtime.clock.now(), type(context.error).__name__))
    if not isinstance(update, Update) or update.effective_chat is None:
        return
    try:
        if update.callback_query is not None:
            await update.callback_query.answer(text(context, "errors.generic"), show_alert=True)
        else:
            await context.bot.send_message(
                update.effective_chat.id, text(context, "errors.generic")
            )
    except TelegramError:
        logger.warning("could not tell chat about the error", exc_info=True)
