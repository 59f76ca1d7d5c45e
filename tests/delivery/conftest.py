"""A delivery engine on a real database, sending to the fake Bot API in-process."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from telegram import Bot

from bot.clock import Clock
from bot.content import Content
from bot.db import migrate
from bot.db.engine import create_engine, create_sessionmaker, unit_of_work
from bot.db.models import Schedule, ScheduleKind, User
from bot.delivery.engine import DeliveryEngine
from bot.delivery.ratelimit import RateBudget
from bot.delivery.sender import Sender
from bot.services.subscriptions import next_run
from tests.fakes.telegram_api import TEST_TOKEN, FakeBotAPI, FakeRequest

# 2026-06-01 06:00 UTC is 08:00 in Berlin.
MORNING = datetime(2026, 6, 1, 6, 0, tzinfo=UTC)


@dataclass
class DeliveryHarness:
    db: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    engine: DeliveryEngine
    clock: Clock
    api: FakeBotAPI
    sender: Sender

    async def subscribe(
        self,
        user_ids: range | list[int],
        *,
        at: time = time(8, 0),
        zone: str = "Europe/Berlin",
        next_run_at: datetime | None = None,
    ) -> None:
        """Subscribed users whose next tip is due at `next_run_at` (default: computed)."""
        now = self.clock.now()
        async with unit_of_work(self.sessions) as session:
            session.add_all(
                User(id=uid, chat_id=uid, timezone=zone, focus_topics=[]) for uid in user_ids
            )
            await session.flush()
            session.add_all(
                Schedule(
                    user_id=uid,
                    kind=ScheduleKind.DAILY_TIP,
                    local_time=at,
                    timezone=zone,
                    next_run_at=next_run_at
                    or next_run(at, zone, ScheduleKind.DAILY_TIP, None, None, now),
                )
                for uid in user_ids
            )

    async def run(self) -> None:
        """Tick until nothing is due, then wait for every send to be recorded."""
        while (await self.engine.tick()).claimed:
            await self.engine.idle()
        await self.engine.idle()


@pytest.fixture
def make_delivery(
    database_url: str, content: Content
) -> Callable[..., AsyncIterator[DeliveryHarness]]:
    async def factory(**engine_options: object) -> AsyncIterator[DeliveryHarness]:
        db = create_engine(database_url)
        await migrate.upgrade(db)
        sessions = create_sessionmaker(db)
        api = FakeBotAPI(TEST_TOKEN)
        bot = Bot(TEST_TOKEN, request=FakeRequest(api, read_timeout=0.3))
        await bot.initialize()
        clock = Clock()
        clock.set(MORNING - timedelta(minutes=1))
        sender = Sender(bot, RateBudget(1000.0, burst=50), backoff=0.01)
        options: dict[str, object] = {"workers": 4, "clock": clock}
        options.update(engine_options)
        engine = DeliveryEngine(sessions=sessions, content=content, sender=sender, **options)  # type: ignore[arg-type]
        await engine.start()
        try:
            yield DeliveryHarness(db, sessions, engine, clock, api, sender)
        finally:
            await engine.stop()
            await bot.shutdown()
            await db.dispose()

    return factory


@pytest.fixture
async def delivery(make_delivery) -> AsyncIterator[DeliveryHarness]:  # type: ignore[no-untyped-def]
    async for env in make_delivery():
        yield env
