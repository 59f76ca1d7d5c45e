"""The claim's statements: the direct SQLite path reads and writes exactly what Core does."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects import postgresql

from bot.db import migrate
from bot.db.engine import create_engine, create_sessionmaker, unit_of_work
from bot.db.models import Delivery, DeliveryStatus, Schedule, ScheduleKind, TipView, User
from bot.delivery.claims import (
    LATE_ERROR,
    ClaimStatements,
    CoreStatements,
    Outcome,
    Shown,
    SqliteStatements,
    statements_for,
)

NOW = datetime(2026, 3, 29, 6, 30, 15, 250_000, tzinfo=UTC)
KINDS = [ScheduleKind.DAILY_TIP, ScheduleKind.CHECKIN_REMINDER, ScheduleKind.WEEKLY_SUMMARY]


async def database(path: Path) -> None:
    """Twelve people with schedules of every kind, some due (one exactly now), some not."""
    engine = create_engine(f"sqlite+aiosqlite:///{path}")
    await migrate.upgrade(engine)
    async with unit_of_work(create_sessionmaker(engine)) as session:
        session.add_all(User(id=n, chat_id=n, focus_topics=[]) for n in range(1, 13))
        await session.flush()
        session.add_all(
            Schedule(
                user_id=n,
                kind=KINDS[n % 3],
                local_time=time(8, n, 30, 123_000) if n % 4 else time(23, 59),
                timezone=["Europe/Berlin", "Asia/Kathmandu", "America/Sao_Paulo"][n % 3],
                weekday=6 if n % 3 == 2 else None,
                paused_until=NOW - timedelta(days=1) if n == 5 else None,
                active=n != 7,
                next_run_at=NOW - timedelta(minutes=n * 17) if n != 6 else NOW,
                created_at=NOW - timedelta(days=3),
                updated_at=NOW - timedelta(days=3),
            )
            for n in range(1, 13)
        )
    await engine.dispose()


async def run_claim(path: Path, direct: bool) -> tuple[list[Any], list[Any]]:
    """Due rows, inserts and advances through one implementation; then every row written."""
    engine = create_engine(f"sqlite+aiosqlite:///{path}")
    sessions = create_sessionmaker(engine)
    statements: ClaimStatements = (
        SqliteStatements(engine.dialect) if direct else CoreStatements(postgres=False)
    )
    async with sessions() as session, session.begin():
        connection = await session.connection()
        every = await statements.due(connection, NOW, 50)
        due = await statements.due(connection, NOW, 10)
        ids = [row[0] for row in due]
        fresh = await statements.insert(connection, ids[:5], date(2026, 3, 29), NOW, True)
        late = await statements.insert(connection, ids[5:], date(2026, 3, 28), NOW, False)
        again = await statements.insert(connection, ids[:2], date(2026, 3, 29), NOW, True)
        await statements.advance(connection, ids, NOW + timedelta(hours=23, seconds=1), NOW)
    async with sessions() as session:
        deliveries = (await session.execute(select(Delivery).order_by(Delivery.id))).scalars()
        written = [
            (d.user_id, d.kind, d.local_date, d.sequence, d.due_at, d.claimed_at, d.status, d.error)
            for d in deliveries
        ]
        schedules = (await session.execute(select(Schedule).order_by(Schedule.id))).scalars()
        written += [(s.id, s.next_run_at, s.snoozes, s.updated_at) for s in schedules]
    await engine.dispose()
    return [every, due, fresh, late, again], written


async def test_the_sqlite_path_matches_core_exactly(tmp_path: Path) -> None:
    await database(tmp_path / "core.db")
    await database(tmp_path / "direct.db")
    core_results, core_rows = await run_claim(tmp_path / "core.db", direct=False)
    direct_results, direct_rows = await run_claim(tmp_path / "direct.db", direct=True)

    assert direct_results == core_results
    assert direct_rows == core_rows
    every, due, fresh, late, again = direct_results
    assert len(every) == 11, "every active schedule due by now, inactive ones never"
    assert NOW in [row[7] for row in every], "a schedule due this very instant is due"
    assert len(due) == 10, "the limit holds: 11 are due"
    assert [row[7] for row in due] == sorted(row[7] for row in due), "earliest first"
    assert NOW not in [row[7] for row in due], "the limit keeps the latest one back"
    assert 7 not in [row[1] for row in due], "inactive schedules are never due"
    assert (len(fresh), len(late), again) == (5, 5, []), "one delivery per user, kind and date"
    assert {row[6] for row in direct_rows[:10]} == {DeliveryStatus.CLAIMED, DeliveryStatus.SKIPPED}
    assert {row[7] for row in direct_rows[:10]} == {None, LATE_ERROR}


async def test_each_database_gets_its_own_statements(tmp_path: Path) -> None:
    sqlite = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'x.db'}")
    try:
        assert isinstance(statements_for(sqlite.dialect), SqliteStatements)
    finally:
        await sqlite.dispose()
    assert isinstance(statements_for(postgresql.dialect()), CoreStatements)


async def record_outcomes(path: Path, direct: bool) -> list[Any]:
    """Claim, then record outcomes of every kind and the tips shown; every row written."""
    engine = create_engine(f"sqlite+aiosqlite:///{path}")
    sessions = create_sessionmaker(engine)
    statements: ClaimStatements = (
        SqliteStatements(engine.dialect) if direct else CoreStatements(postgres=False)
    )
    finished = NOW + timedelta(seconds=3, microseconds=7)
    async with sessions() as session, session.begin():
        connection = await session.connection()
        ids = [row[0] for row in await statements.due(connection, NOW, 50)]
        claimed = await statements.insert(connection, ids, date(2026, 3, 29), NOW, True)
    outcomes: list[Outcome] = [
        (claimed[0][0], DeliveryStatus.SENT, 2**40, None, "sleep-01"),
        (claimed[1][0], DeliveryStatus.BLOCKED, None, "Forbidden: bot was blocked", None),
        (claimed[2][0], DeliveryStatus.UNKNOWN, None, "timed out", "stress-02"),
        (claimed[3][0], DeliveryStatus.FAILED, None, 'Bad Request: "quoted", \\ and ünïcode', None),
    ]
    shown: list[Shown] = [
        (claimed[0][1], "sleep-01", "sleep"),
        (claimed[2][1], "stress-02", "stress"),
    ]
    async with sessions() as session, session.begin():
        connection = await session.connection()
        await statements.finish(connection, outcomes, finished)
        await statements.shown(connection, shown, finished)
        await statements.finish(connection, [], finished)
        await statements.shown(connection, [], finished)
    async with sessions() as session:
        deliveries = (await session.execute(select(Delivery).order_by(Delivery.id))).scalars()
        written: list[Any] = [
            (d.id, d.status, d.finished_at, d.telegram_message_id, d.error, d.tip_id)
            for d in deliveries
        ]
        views = (await session.execute(select(TipView).order_by(TipView.id))).scalars()
        written += [(v.user_id, v.tip_id, v.topic_id, v.shown_at) for v in views]
    await engine.dispose()
    return written


async def test_outcomes_through_sqlite_match_core_exactly(tmp_path: Path) -> None:
    await database(tmp_path / "core.db")
    await database(tmp_path / "direct.db")
    core = await record_outcomes(tmp_path / "core.db", direct=False)
    direct = await record_outcomes(tmp_path / "direct.db", direct=True)

    assert direct == core
    finished = NOW + timedelta(seconds=3, microseconds=7)
    sent, blocked, unknown, failed, *waiting = direct[:-2]
    assert sent[1:] == (DeliveryStatus.SENT, finished, 2**40, None, "sleep-01")
    assert blocked[1:] == (
        DeliveryStatus.BLOCKED,
        finished,
        None,
        "Forbidden: bot was blocked",
        None,
    )
    assert unknown[1] == DeliveryStatus.UNKNOWN
    assert failed[4] == 'Bad Request: "quoted", \\ and ünïcode'
    assert {row[1] for row in waiting} == {DeliveryStatus.CLAIMED}, "others untouched"
    assert [row[1:] for row in direct[-2:]] == [
        ("sleep-01", "sleep", finished),
        ("stress-02", "stress", finished),
    ]
