"""Answers for whatever no feature handled: unknown commands, free text, stale buttons."""

from __future__ import annotations

from html import escape

from sqlalchemy import select
from telegram import Update
from telegram.ext import ApplicationHandlerStop

from bot.db.models import User
from bot.handlers import topics
from bot.handlers.common import Context, reply, runtime, text
from bot.services import safety


async def unknown_command(update: Update, context: Context) -> None:
    """Say the command is unknown and point to /help."""
    message = update.effective_message
    word = (message.text or "").split(maxsplit=1)[0] if message and message.text else "/"
    await reply(update, text(context, "fallback.unknown_command", command=escape(word[:40])))


async def crisis_message(context: Context, update: Update) -> str:
    """The crisis text with lines for the user's country (chosen, or from the language) first."""
    rt = runtime(context)
    content = rt.content
    user = update.effective_user
    chosen = None
    if user is not None:
        async with rt.sessions() as session:
            chosen = await session.scalar(select(User.country).where(User.id == user.id))
    country = safety.country_for(
        user.language_code if user else None, chosen, content.safety.language_countries
    )
    lines = "\n".join(
        content.text("safety.crisis_line", name=escape(line.name), contact=escape(line.contact))
        for line in safety.crisis_lines(content.safety, country)
    )
    return content.safety.crisis_text.format(lines=lines)


async def answer_concern(update: Update, context: Context, message_text: str) -> safety.Concern:
    """Answer crisis or red-flag language, before anything else is said."""
    content = runtime(context).content
    concern = safety.assess(message_text, content.safety)
    if concern.crisis:
        await reply(update, await crisis_message(context, update))
    if concern.redflag:
        await reply(update, content.safety.redflags_text)
    return concern


async def free_text(update: Update, context: Context) -> None:
    """Answer plain text: safety first, then matching topics, else a pointer to /help."""
    message = update.effective_message
    if message is None or message.text is None:
        return
    concern = await answer_concern(update, context, message.text)
    if concern.crisis:
        return  # nothing should follow the crisis message
    if await topics.suggest(update, context, message.text) or concern.redflag:
        return
    await reply(update, text(context, "fallback.text"))


async def not_text(update: Update, context: Context) -> None:
    """Stickers, photos, voice and the like: say what the bot understands."""
    await reply(update, text(context, "fallback.not_text"))


async def stale_button(update: Update, context: Context) -> None:
    """A button nobody handles any more, e.g. from an old message."""
    query = update.callback_query
    if query is not None:
        await query.answer(text(context, "errors.stale_button"), show_alert=True)


async def foreign_button(update: Update, context: Context) -> None:
    """A button on a message outside the presser's own private chat (another person's
    message, or a group) does nothing: it is answered as stale and goes no further."""
    query = update.callback_query
    if query is None or query.message is None:
        return
    if query.message.chat.id != query.from_user.id:
        await query.answer(text(context, "errors.stale_button"), show_alert=True)
        raise ApplicationHandlerStop
