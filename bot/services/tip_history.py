"""What each person has seen and thought of tips: loaded in bulk, recorded one by one."""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Mapping, Sequence
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import Executable, aggregate_order_by, func, select
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
    """Tip histories for many users in three queries, one row per user and kind of fact.

    The delivery engine loads hundreds at a time while it sends, and every row the database
    driver steps and hands over is work that competes with the sending loop, so what each
    person has seen comes back as one ordered string per person, not one row per tip shown.
    """
    user_ids = list(focus_by_user)
    connection = await session.connection()
    postgres = connection.dialect.name == "postgresql"
    last_daily: dict[int, str] = {
        row[0]: row[1]
        for row in await connection.execute(_last_daily_query(user_ids, now, postgres))
    }
    seen: dict[int, list[str]] = {user_id: [] for user_id in user_ids}
    for user_id, shown in await connection.execute(_seen_query(user_ids, postgres)):
        seen[user_id] = _shown_in_order(shown, postgres)
    verdicts: dict[int, dict[Feedback, set[str]]] = defaultdict(lambda: defaultdict(set))
    feedback = await connection.execute(
        select(TipFeedback.user_id, TipFeedback.tip_id, TipFeedback.verdict).where(
            TipFeedback.user_id.in_(user_ids)
        )
    )
    for user_id, tip_id, verdict in feedback.all():
        verdicts[user_id][verdict].add(tip_id)
    histories: dict[int, TipHistory] = {}
    for user_id in user_ids:
        said = verdicts.get(user_id)
        last = last_daily.get(user_id)
        histories[user_id] = TipHistory(
            seen=seen[user_id],
            not_for_me=frozenset(said[Feedback.NOT_FOR_ME]) if said else frozenset(),
            helpful=frozenset(said[Feedback.HELPFUL]) if said else frozenset(),
            focus_topics=frozenset(focus_by_user[user_id]),
            last_daily_topic=_topic_of(last) if last else None,
        )
    return histories


def _last_daily_query(user_ids: list[int], now: datetime, postgres: bool) -> Executable:
    """Per user, the tip of their latest daily delivery in the last few days."""
    recent = (
        Delivery.user_id.in_(user_ids),
        Delivery.kind == ScheduleKind.DAILY_TIP,
        Delivery.tip_id.is_not(None),
        Delivery.due_at >= now - LAST_DAILY_LOOKBACK,
    )
    if postgres:
        from sqlalchemy.dialects.postgresql import distinct_on  # only where it is used

        return (
            select(Delivery.user_id, Delivery.tip_id)
            .where(*recent)
            .ext(distinct_on(Delivery.user_id))
            .order_by(Delivery.user_id, Delivery.due_at.desc(), Delivery.id.desc())
        )
    # SQLite gives the other columns of a max() query from the row that holds the maximum.
    return (
        select(Delivery.user_id, Delivery.tip_id, func.max(Delivery.due_at))
        .where(*recent)
        .group_by(Delivery.user_id)
    )


def _seen_query(user_ids: list[int], postgres: bool) -> Executable:
    """Per user, every tip shown, as one string in showing order (PostgreSQL) or tagged with
    its moment of showing to be put in order here (SQLite: group_concat has no ORDER BY before
    3.44; its timestamps are fixed-width text, so they sort as text)."""
    if postgres:
        shown: Any = aggregate_order_by(
            func.string_agg(TipView.tip_id, ","), TipView.shown_at, TipView.id
        )
    else:
        tagged = func.printf("%s|%012d|%s", TipView.shown_at, TipView.id, TipView.tip_id)
        shown = func.group_concat(tagged, ",")
    return (
        select(TipView.user_id, shown)
        .where(TipView.user_id.in_(user_ids))
        .group_by(TipView.user_id)
    )


def _shown_in_order(shown: str, ordered: bool) -> list[str]:
    if ordered:
        return shown.split(",")
    return [tagged.rsplit("|", 1)[1] for tagged in sorted(shown.split(","))]


def _topic_of(tip_id: str | None) -> str | None:
    """Tip ids are '<topic>-NN'."""
    return tip_id.rsplit("-", 1)[0] if tip_id else None


_MASK = (1 << 64) - 1
_GOLDEN = 0x9E3779B97F4A7C15


class DayDraw(random.Random):
    """A per-user, per-day random source: the same inputs choose the same tip.

    Seeding a Mersenne Twister costs several microseconds, as much as choosing the tip itself,
    and the engine seeds one per delivery; this is SplitMix64 (Steele, Lea and Flood, 2014)
    behind the `random.Random` interface, which builds every other method on `random()` and
    `getrandbits()`.
    """

    def __init__(self, user_id: int, day: date) -> None:
        self._state = (user_id * _GOLDEN + day.toordinal() * 0xBF58476D1CE4E5B9) & _MASK
        self.gauss_next = None

    def seed(self, a: object = None, version: int = 2) -> None:
        self._state = hash(a) & _MASK

    def _next(self) -> int:
        state = self._state = (self._state + _GOLDEN) & _MASK
        mixed = ((state ^ (state >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
        mixed = ((mixed ^ (mixed >> 27)) * 0x94D049BB133111EB) & _MASK
        return mixed ^ (mixed >> 31)

    def random(self) -> float:
        return (self._next() >> 11) * (1.0 / (1 << 53))

    def getrandbits(self, k: int, /) -> int:
        bits = value = 0
        while bits < k:
            value = (value << 64) | self._next()
            bits += 64
        return value >> (bits - k)

    def getstate(self) -> tuple[int, ...]:
        return (self._state,)

    def setstate(self, state: tuple[int, ...]) -> None:
        (self._state,) = state


def rng_for(user_id: int, day: date) -> random.Random:
    """The random source that chooses this user's tip for this local date."""
    return DayDraw(user_id, day)


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
