"""Small helpers every handler module shares."""

from __future__ import annotations

from html import escape

from telegram import Message, Update
from telegram.ext import ContextTypes

from bot.db.engine import unit_of_work
from bot.runtime import Runtime, get_runtime
from bot.services import users

Context = ContextTypes.DEFAULT_TYPE


def runtime(context: Context) -> Runtime:
    """The running bot's settings, content and database."""
    return get_runtime(context.application)


def text(context: Context, key: str, /, **values: object) -> str:
    """A UI text from content/ with its placeholders filled."""
    return runtime(context).content.text(key, **values)


def name_part(update: Update) -> str:
    """', Alex' for a greeting, escaped for HTML; empty when Telegram gives no name."""
    user = update.effective_user
    if user is None or not user.first_name:
        return ""
    return ", " + escape(user.first_name[:64], quote=False)


async def reply(update: Update, body: str, **kwargs: object) -> Message | None:
    """Answer in the chat the update came from."""
    message = update.effective_message
    if message is None:
        return None
    return await message.reply_text(body, **kwargs)  # type: ignore[arg-type]


async def visit(rt: Runtime, update: Update) -> tuple[int, int] | None:
    """Record the sender (a command may come before /start, or after a block); return
    (user id, chat id), or None for updates without a user and a chat."""
    user, chat = update.effective_user, update.effective_chat
    if user is None or chat is None:
        return None
    async with unit_of_work(rt.sessions) as session:
        await users.record_visit(session, user.id, chat.id, user.language_code, now=rt.clock.now())
    return user.id, chat.id


async def visit_id(rt: Runtime, update: Update) -> int | None:
    """Like `visit`, returning only the user id."""
    ids = await visit(rt, update)
    return ids[0] if ids else None
