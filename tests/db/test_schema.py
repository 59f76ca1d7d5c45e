"""The data layer: migrations match the models, SQLite pragmas, aware datetimes, constraints."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, date, datetime, time
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, select, text
from sqlalchemy.exc import IntegrityError, StatementError

from bot.db import migrate
from bot.db.engine import create_engine, create_sessionmaker, unit_of_work
from bot.db.models import Base, Delivery, Schedule, ScheduleKind, User

ROOT = Path(__file__).resolve().parent.parent.parent


async def test_migrations_build_exactly_the_models(database_url: str) -> None:
    engine = create_engine(database_url)
    await migrate.upgrade(engine)
    async with engine.connect() as connection:

        def diff(sync_connection):  # type: ignore[no-untyped-def]
            context = MigrationContext.configure(sync_connection, opts={"compare_type": True})
            return compare_metadata(context, Base.metadata)

        differences = await connection.run_sync(diff)
        tables = await connection.run_sync(lambda c: set(inspect(c).get_table_names()))
    assert differences == []
    assert set(Base.metadata.tables) <= tables
    assert await migrate.current_revision(engine) == migrate.head_revision()
    await engine.dispose()


async def test_sqlite_pragmas_wal_checkpoints_busy_timeout_foreign_keys(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'nested' / 'db.sqlite'}")
    async with engine.connect() as connection:
        assert (await connection.execute(text("PRAGMA journal_mode"))).scalar() == "wal"
        assert (await connection.execute(text("PRAGMA foreign_keys"))).scalar() == 1
        assert (await connection.execute(text("PRAGMA busy_timeout"))).scalar() == 5000
        assert (await connection.execute(text("PRAGMA wal_autocheckpoint"))).scalar() == 10_000
    assert (tmp_path / "nested" / "db.sqlite").exists()
    await engine.dispose()


async def test_datetimes_are_aware_and_naive_ones_are_refused(database_url: str) -> None:
    engine = create_engine(database_url)
    await migrate.upgrade(engine)
    sessions = create_sessionmaker(engine)
    when = datetime(2026, 3, 29, 1, 30, tzinfo=UTC)
    async with unit_of_work(sessions) as session:
        session.add(User(id=1, chat_id=1, focus_topics=[], blocked_at=when))
    async with sessions() as session:
        loaded = await session.scalar(select(User.blocked_at).where(User.id == 1))
    assert loaded == when
    assert loaded is not None
    assert loaded.tzinfo is not None
    with pytest.raises(StatementError, match="naive datetime"):
        async with unit_of_work(sessions) as session:
            session.add(User(id=2, chat_id=2, focus_topics=[], blocked_at=datetime(2026, 1, 1)))
    await engine.dispose()


async def test_one_delivery_per_user_kind_and_local_date(database_url: str) -> None:
    engine = create_engine(database_url)
    await migrate.upgrade(engine)
    sessions = create_sessionmaker(engine)
    due = datetime(2026, 5, 1, 6, 0, tzinfo=UTC)
    async with unit_of_work(sessions) as session:
        session.add(User(id=7, chat_id=7, focus_topics=[]))
        await session.flush()
        session.add(
            Delivery(
                user_id=7, kind=ScheduleKind.DAILY_TIP, local_date=date(2026, 5, 1), due_at=due
            )
        )
    with pytest.raises(IntegrityError):
        async with unit_of_work(sessions) as session:
            session.add(
                Delivery(
                    user_id=7, kind=ScheduleKind.DAILY_TIP, local_date=date(2026, 5, 1), due_at=due
                )
            )
    await engine.dispose()


async def test_deleting_a_user_removes_their_rows(database_url: str) -> None:
    engine = create_engine(database_url)
    await migrate.upgrade(engine)
    sessions = create_sessionmaker(engine)
    async with unit_of_work(sessions) as session:
        session.add(User(id=9, chat_id=9, focus_topics=[]))
        await session.flush()
        session.add(
            Schedule(
                user_id=9,
                kind=ScheduleKind.DAILY_TIP,
                local_time=time(8, 0),
                timezone="Europe/Berlin",
            )
        )
    async with unit_of_work(sessions) as session:
        await session.execute(text("DELETE FROM users WHERE id = 9"))
    async with sessions() as session:
        assert (await session.scalars(select(Schedule))).all() == []
    await engine.dispose()


def test_db_upgrade_command(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}"
    env = {"DATABASE_URL": url, "PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)}
    result = subprocess.run(
        [sys.executable, "-m", "bot", "db", "upgrade"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "up to date" in result.stdout
    assert (tmp_path / "cli.db").exists()
