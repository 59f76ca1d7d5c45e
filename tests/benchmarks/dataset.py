"""Synthetic subscribers, written straight into a fresh SQLite database with bulk inserts."""

from __future__ import annotations

import random
import shutil
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import insert

from bot.content import Content
from bot.db import migrate
from bot.db.engine import create_engine, create_sessionmaker, unit_of_work
from bot.db.models import Delivery, DeliveryStatus, Schedule, ScheduleKind, TipView, User
from bot.services import subscriptions

FIRST_USER_ID = 200_000_001
CHUNK = 10_000
# A spread of offsets, with and without daylight saving, north and south.
ZONES = (
    "UTC",
    "Europe/London",
    "Europe/Berlin",
    "Europe/Madrid",
    "Europe/Kyiv",
    "Europe/Moscow",
    "Africa/Lagos",
    "Africa/Johannesburg",
    "Asia/Dubai",
    "Asia/Kolkata",
    "Asia/Kathmandu",
    "Asia/Shanghai",
    "Asia/Tokyo",
    "Australia/Sydney",
    "Pacific/Auckland",
    "America/Sao_Paulo",
    "America/New_York",
    "America/Chicago",
    "America/Denver",
    "America/Los_Angeles",
)


@dataclass(frozen=True, slots=True)
class Subscriber:
    """One user with an active daily-tip schedule."""

    user_id: int
    timezone: str
    local_time: time
    next_run_at: datetime
    focus_topics: tuple[str, ...]


def sqlite_url(path: Path) -> str:
    return f"sqlite+aiosqlite:///{path}"


def _focus(rng: random.Random, topic_ids: Sequence[str]) -> tuple[str, ...]:
    """A third of the people picked one or two focus topics."""
    if not topic_ids or rng.random() >= 1 / 3:
        return ()
    return tuple(rng.sample(list(topic_ids), k=rng.randint(1, min(2, len(topic_ids)))))


def future_subscribers(
    count: int, now: datetime, topic_ids: Sequence[str], *, seed: int = 1
) -> list[Subscriber]:
    """Subscribers whose next tip is 30 min to 23.5 h away: nothing is due for a while."""
    rng = random.Random(seed)
    people = []
    for n in range(count):
        zone = rng.choice(ZONES)
        target = now + timedelta(minutes=rng.randint(30, 23 * 60 + 30))
        local = target.astimezone(ZoneInfo(zone)).time().replace(second=0, microsecond=0)
        next_run = subscriptions.next_run(local, zone, ScheduleKind.DAILY_TIP, None, None, now)
        people.append(Subscriber(FIRST_USER_ID + n, zone, local, next_run, _focus(rng, topic_ids)))
    return people


def due_subscribers(
    count: int,
    now: datetime,
    topic_ids: Sequence[str],
    *,
    seed: int = 2,
    within: timedelta = timedelta(minutes=10),
) -> list[Subscriber]:
    """Subscribers whose tip fell due during the last `within`: all of them are due now."""
    rng = random.Random(seed)
    people = []
    for n in range(count):
        zone = rng.choice(ZONES)
        at = (now - timedelta(seconds=rng.uniform(60, within.total_seconds()))).replace(
            second=0, microsecond=0
        )
        local = at.astimezone(ZoneInfo(zone)).time()
        people.append(Subscriber(FIRST_USER_ID + n, zone, local, at, _focus(rng, topic_ids)))
    return people


def _chunks(items: Sequence[Subscriber], size: int) -> Iterator[Sequence[Subscriber]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


async def create_database(
    path: Path,
    people: Sequence[Subscriber],
    content: Content,
    *,
    tip_views: int = 0,
    past_deliveries: int = 0,
    seed: int = 3,
) -> None:
    """A fresh, migrated database holding `people`, each with a tip history.

    Each person has seen `tip_views` distinct tips, one a day, the last one a day before their
    next run; the newest `past_deliveries` of those came as daily tips (a sent delivery row).
    """
    rng = random.Random(seed)
    tips = sorted(content.tips.values(), key=lambda tip: tip.id)
    engine = create_engine(sqlite_url(path))
    try:
        await migrate.upgrade(engine)
        sessions = create_sessionmaker(engine)
        for chunk in _chunks(people, CHUNK):
            users: list[dict[str, Any]] = []
            schedules: list[dict[str, Any]] = []
            views: list[dict[str, Any]] = []
            deliveries: list[dict[str, Any]] = []
            for person in chunk:
                created = person.next_run_at - timedelta(days=tip_views + 1)
                users.append(
                    {
                        "id": person.user_id,
                        "chat_id": person.user_id,
                        "language_code": "en",
                        "timezone": person.timezone,
                        "is_active": True,
                        "focus_topics": list(person.focus_topics),
                        "created_at": created,
                        "updated_at": created,
                    }
                )
                schedules.append(
                    {
                        "user_id": person.user_id,
                        "kind": ScheduleKind.DAILY_TIP,
                        "local_time": person.local_time,
                        "timezone": person.timezone,
                        "weekday": None,
                        "active": True,
                        "paused_until": None,
                        "next_run_at": person.next_run_at,
                        "created_at": created,
                        "updated_at": created,
                    }
                )
                zone = ZoneInfo(person.timezone)
                seen = rng.sample(tips, k=min(tip_views, len(tips)))
                for k, tip in enumerate(seen):
                    days_ago = len(seen) - k
                    shown_at = person.next_run_at - timedelta(days=days_ago)
                    views.append(
                        {
                            "user_id": person.user_id,
                            "tip_id": tip.id,
                            "topic_id": tip.topic_id,
                            "shown_at": shown_at,
                        }
                    )
                    if days_ago <= past_deliveries:
                        deliveries.append(
                            {
                                "user_id": person.user_id,
                                "kind": ScheduleKind.DAILY_TIP,
                                "local_date": shown_at.astimezone(zone).date(),
                                "due_at": shown_at,
                                "claimed_at": shown_at,
                                "finished_at": shown_at,
                                "status": DeliveryStatus.SENT,
                                "tip_id": tip.id,
                                "telegram_message_id": days_ago,
                                "error": None,
                            }
                        )
            async with unit_of_work(sessions) as session:
                await session.execute(insert(User), users)
                await session.execute(insert(Schedule), schedules)
                if views:
                    await session.execute(insert(TipView), views)
                if deliveries:
                    await session.execute(insert(Delivery), deliveries)
        async with engine.connect() as connection:
            await connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        await engine.dispose()


def copy_database(source: Path, target: Path) -> None:
    """A byte copy of a closed SQLite database (with its WAL, if one was left)."""
    shutil.copyfile(source, target)
    for suffix in ("-wal", "-shm"):
        extra = source.with_name(source.name + suffix)
        if extra.exists():
            shutil.copyfile(extra, target.with_name(target.name + suffix))
