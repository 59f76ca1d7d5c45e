"""Several delivery workers on one PostgreSQL database split the work without overlap."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import timedelta

import pytest
from sqlalchemy import func, select
from telegram import Bot

from bot.clock import Clock
from bot.content import Content
from bot.db import migrate
from bot.db.engine import create_engine, create_sessionmaker, unit_of_work
from bot.db.models import Delivery, DeliveryStatus, Schedule, ScheduleKind, User
from bot.delivery.engine import DeliveryEngine
from bot.delivery.ratelimit import RateBudget
from bot.delivery.sender import Sender
from tests.conftest import POSTGRES_URL, reset_postgres
from tests.delivery.conftest import MORNING
from tests.fakes.telegram_api import TEST_TOKEN, FakeBotAPI, FakeRequest

USERS = range(1, 5_001)


@pytest.mark.postgres
async def test_two_workers_deliver_5000_tips_without_duplicates(content: Content) -> None:
    await reset_postgres(POSTGRES_URL)
    setup = create_engine(POSTGRES_URL)
    await migrate.upgrade(setup)
    async with unit_of_work(create_sessionmaker(setup)) as session:
        session.add_all(User(id=u, chat_id=u, timezone="UTC", focus_topics=[]) for u in USERS)
        await session.flush()
        session.add_all(
            Schedule(
                user_id=u,
                kind=ScheduleKind.DAILY_TIP,
                local_time=MORNING.time(),
                timezone="UTC",
                next_run_at=MORNING - timedelta(seconds=u % 50),
            )
            for u in USERS
        )
    api = FakeBotAPI(TEST_TOKEN)
    clock = Clock()
    clock.set(MORNING + timedelta(seconds=1))

    async def worker() -> None:
        db = create_engine(POSTGRES_URL)
        bot = Bot(TEST_TOKEN, request=FakeRequest(api))
        await bot.initialize()
        engine = DeliveryEngine(
            sessions=create_sessionmaker(db),
            content=content,
            sender=Sender(bot, RateBudget(5000.0, burst=100)),
            batch_size=200,
            clock=clock,
            single_worker=False,
        )
        await engine.start()
        while (await engine.tick()).claimed:
            await engine.idle()
        await engine.stop()
        await bot.shutdown()
        await db.dispose()

    await asyncio.gather(worker(), worker())
    per_chat = Counter(m.chat_id for m in api.sent_messages())
    assert len(per_chat) == len(USERS), "nothing missing"
    assert max(per_chat.values()) == 1, "zero duplicates"
    async with create_sessionmaker(setup)() as session:
        sent = await session.scalar(
            select(func.count()).where(Delivery.status == DeliveryStatus.SENT)
        )
    await setup.dispose()
    assert sent == len(USERS)
