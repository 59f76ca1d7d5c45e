"""What each person has seen and thought of tips: loaded in bulk, recorded one by one."""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Mapping, Sequence
from datetime import date, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.content import Content, Tip
from bot.db.models import (
    Delivery,
    Feedback,
    ScheduleKind,
    TipFeedback,
    TipView,
    User,
    utcnow,
)
from bot.services.tips import TipHistory, choose_tip

LAST_DAILY_LOOKBACK = timedelta(days=3)


async def load_histories(
    session: AsyncSession, focus_by_user: Mapping[int, Sequence[str]], now: datetime
) -> dict[int, TipHistory]:
    """Tip histories for many users in three queries."""
    user_ids = list(focus_by_user)
    last_daily: dict[int, str] = {}
    recent = await session.execute(
        select(Delivery.user_id, Delivery.tip_id)
        .where(
            Delivery.user_id.in_(user_ids),
            Delivery.kind == ScheduleKind.DAILY_TIP,
            Delivery.tip_id.is_not(None),
            Delivery.due_at >= now - LAST_DAILY_LOOKBACK,
        )
        .order_by(Delivery.due_at)
    )
    for user_id, tip_id in recent:
        if tip_id is not None:
            last_daily[user_id] = tip_id
    seen: dict[int, list[tuple[str, str]]] = defaultdict(list)
    views = await session.execute(
        select(TipView.user_id, TipView.tip_id, TipView.topic_id)
        .where(TipView.user_id.in_(user_ids))
        .order_by(TipView.user_id, TipView.shown_at, TipView.id)
    )
    for user_id, tip_id, topic_id in views:
        seen[user_id].append((tip_id, topic_id))
    verdicts: dict[int, dict[Feedback, set[str]]] = defaultdict(lambda: defaultdict(set))
    feedback = await session.execute(
        select(TipFeedback.user_id, TipFeedback.tip_id, TipFeedback.verdict).where(
            TipFeedback.user_id.in_(user_ids)
        )
    )
    for user_id, tip_id, verdict in feedback:
        verdicts[user_id][verdict].add(tip_id)
    return {
        user_id: TipHistory(
            seen=seen[user_id],
            not_for_me=frozenset(verdicts[user_id][Feedback.NOT_FOR_ME]),
            helpful=frozenset(verdicts[user_id][Feedback.HELPFUL]),
            focus_topics=frozenset(focus_by_user[user_id]),
            last_daily_topic=_topic_of(last_daily.get(user_id)),
        )
        for user_id in user_ids
    }


def _topic_of(tip_id: str | None) -> str | None:
    """Tip ids are '<topic>-NN'."""
    return tip_id.rsplit("-", 1)[0] if tip_id else None


def rng_for(user_id: int, day: date) -> random.Random:
    """A per-user, per-day random source: the same inputs choose the same tip."""
    return random.Random(f"{user_id}:{day.isoformat()}")


async def next_tip_for(
    session: AsyncSession,
    content: Content,
    user_id: int,
    *,
    only_topic: str | None = None,
    now: datetime | None = None,
) -> Tip | None:
    """The tip this user should see next (optionally from one topic)."""
    user = await session.get(User, user_id)
    focus = tuple(user.focus_topics or ()) if user else ()
    moment = now or utcnow()
    history = (await load_histories(session, {user_id: focus}, moment))[user_id]
    rng = random.Random(f"{user_id}:{moment.isoformat()}")
    return choose_tip(content.topics, history, rng, only_topic=only_topic)


async def record_view(session: AsyncSession, user_id: int, tip: Tip) -> None:
    """Remember that this user was shown this tip."""
    session.add(TipView(user_id=user_id, tip_id=tip.id, topic_id=tip.topic_id))
    await session.flush()


async def record_feedback(session: AsyncSession, user_id: int, tip: Tip, verdict: Feedback) -> None:
    """Store the user's verdict on a tip; a later answer replaces an earlier one."""
    existing = await session.scalar(
        select(TipFeedback).where(TipFeedback.user_id == user_id, TipFeedback.tip_id == tip.id)
    )
    if existing is None:
        session.add(
            TipFeedback(user_id=user_id, tip_id=tip.id, topic_id=tip.topic_id, verdict=verdict)
        )
    else:
        existing.verdict = verdict
        existing.created_at = utcnow()
    await session.flush()
