"""/start, /help and /redflags: the first conversations."""

from __future__ import annotations

from telegram import Update

from bot.db.engine import unit_of_work
from bot.handlers import topics
from bot.handlers.common import Context, name_part, reply, runtime, text
from bot.services import users


async def start(update: Update, context: Context) -> None:
    """Greet a new or returning user (reactivating them); a deep link opens its topic."""
    rt = runtime(context)
    user, chat = update.effective_user, update.effective_chat
    if user is None or chat is None:
        return
    async with unit_of_work(rt.sessions) as session:
        visit = await users.record_visit(
            session, user.id, chat.id, user.language_code, now=rt.clock.now()
        )
    payload = context.args[0] if context.args else ""
    if visit.is_new:
        await reply(update, text(context, "start.welcome", name_part=name_part(update)))
    opened = bool(payload) and await topics.deep_link(update, context, payload)
    if not visit.is_new and not opened:
        await reply(update, text(context, "start.welcome_back", name_part=name_part(update)))


def help_text(context: Context) -> str:
    """Every command, grouped as content/commands.yml lists them."""
    content = runtime(context).content
    parts = [content.text("help.header")]
    for group in content.command_groups:
        lines = [content.text("help.group", title=group.title)]
        lines += [
            content.text("help.line", command=c.command, description=c.description)
            for c in group.commands
        ]
        parts.append("\n".join(lines))
    parts.append(content.text("help.footer"))
    return "\n\n".join(parts)


async def help_command(update: Update, context: Context) -> None:
    """List every command, grouped."""
    await reply(update, help_text(context))


async def redflags(update: Update, context: Context) -> None:
    """Show when back pain needs urgent medical help."""
    await reply(update, runtime(context).content.safety.redflags_text)


async def group_pointer(update: Update, context: Context) -> None:
    """In a group, point people to a private chat instead."""
    await reply(update, text(context, "fallback.private_only", bot_username=context.bot.username))
