"""The check-in writer: concurrent saves share transactions, each caller gets its own result."""

from __future__ import annotations

import asyncio
import base64
from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select

from bot.crypto import Keyring, generate_key
from bot.db import migrate
from bot.db.engine import create_engine, create_sessionmaker, unit_of_work
from bot.db.models import CheckIn, User
from bot.services.checkin_writer import CheckinWriter
from bot.services.checkins import Scores

NOW = datetime(2026, 6, 1, 8, 0, tzinfo=UTC)


async def test_concurrent_saves_are_stored_and_refusals_stay_separate(database_url: str) -> None:
    engine = create_engine(database_url)
    await migrate.upgrade(engine)
    sessions = create_sessionmaker(engine)
    keyring = Keyring([base64.urlsafe_b64decode(generate_key())])
    async with unit_of_work(sessions) as session:
        session.add_all(
            User(id=u, chat_id=u, focus_topics=[], checkin_consent_at=NOW if u != 13 else None)
            for u in range(1, 21)
        )
    writer = CheckinWriter(sessions, lambda: keyring)
    writer.start()
    results = await asyncio.gather(
        *(writer.save(u, Scores(pain=u % 11, note=f"n{u}"), NOW) for u in range(1, 21)),
        return_exceptions=True,
    )
    await writer.stop()
    refused = [r for r in results if isinstance(r, BaseException)]
    assert len(refused) == 1
    assert isinstance(refused[0], PermissionError), "only the user without consent is refused"
    assert [r.scores.pain for r in results if not isinstance(r, BaseException)][:3] == [1, 2, 3]
    async with sessions() as session:
        assert await session.scalar(select(func.count()).select_from(CheckIn)) == 19
        assert await session.scalar(select(func.count()).where(CheckIn.user_id == 13)) == 0
    await engine.dispose()


async def test_without_a_running_task_it_saves_directly(database_url: str) -> None:
    engine = create_engine(database_url)
    await migrate.upgrade(engine)
    sessions = create_sessionmaker(engine)
    keyring = Keyring([base64.urlsafe_b64decode(generate_key())])
    async with unit_of_work(sessions) as session:
        session.add(User(id=1, chat_id=1, focus_topics=[], checkin_consent_at=None))
    writer = CheckinWriter(sessions, lambda: keyring)
    with pytest.raises(PermissionError):
        await writer.save(1, Scores(pain=3), NOW)
    await engine.dispose()
