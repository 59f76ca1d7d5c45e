"""Who people are to BackCalm: first visits, returning users, blocking."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.db.models import User, utcnow
from bot.services import subscriptions


@dataclass(frozen=True, slots=True)
class Visit:
    """The outcome of a /start: whether this person is new or coming back."""

    user_id: int
    is_new: bool
    was_inactive: bool


LANGUAGE_CODE_LENGTH = 16


async def record_visit(
    session: AsyncSession,
    user_id: int,
    chat_id: int,
    language_code: str | None,
    now: datetime | None = None,
) -> Visit:
    """Create the user on a first visit; reactivate one who had blocked or left."""
    language_code = language_code[:LANGUAGE_CODE_LENGTH] if language_code else None
    user = await session.get(User, user_id)
    if user is None:
        session.add(User(id=user_id, chat_id=chat_id, language_code=language_code, focus_topics=[]))
        await session.flush()
        return Visit(user_id, is_new=True, was_inactive=False)
    was_inactive = not user.is_active
    user.chat_id = chat_id
    user.language_code = language_code or user.language_code
    user.is_active = True
    user.blocked_at = None
    await session.flush()
    if was_inactive:
        await subscriptions.reschedule_all(session, user_id, now or utcnow())
    return Visit(user_id, is_new=False, was_inactive=was_inactive)


async def set_blocked(session: AsyncSession, user_id: int, at: datetime | None = None) -> bool:
    """Mark a user who blocked the bot as inactive; False if they were unknown."""
    user = await session.get(User, user_id)
    if user is None:
        return False
    user.is_active = False
    user.blocked_at = at or utcnow()
    await subscriptions.stop_all(session, user_id)
    await session.flush()
    return True


async def active_user_ids(session: AsyncSession) -> list[int]:
    """Ids of every user who has not blocked the bot."""
    result = await session.scalars(select(User.id).where(User.is_active.is_(True)))
    return list(result)
