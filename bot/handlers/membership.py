"""Telegram's my_chat_member updates: a user blocking or unblocking the bot."""

from __future__ import annotations

import logging

from telegram import ChatMember, Update

from bot.db.engine import unit_of_work
from bot.handlers.common import Context, runtime
from bot.services import users

logger = logging.getLogger(__name__)


async def my_chat_member(update: Update, context: Context) -> None:
    """Deactivate a user who blocked the bot; reactivate one who unblocked it."""
    change = update.my_chat_member
    if change is None or change.chat.type != "private":
        return
    status = change.new_chat_member.status
    rt = runtime(context)
    async with unit_of_work(rt.sessions) as session:
        if status in (ChatMember.BANNED, ChatMember.LEFT):
            known = await users.set_blocked(session, change.from_user.id, rt.clock.now())
            logger.info("user blocked the bot (known=%s)", known)
        elif status == ChatMember.MEMBER:
            await users.record_visit(
                session,
                change.from_user.id,
                change.chat.id,
                change.from_user.language_code,
                now=rt.clock.now(),
            )
