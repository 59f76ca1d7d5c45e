"""Operator tasks: status, online SQLite backup, copying data between databases."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import func, insert, select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.config import ConfigError
from bot.db import migrate
from bot.db.engine import create_engine, create_sessionmaker, sqlite_file
from bot.db.models import Base, Delivery, Schedule, ScheduleKind, User, Worker, utcnow

COPY_CHUNK = 2000


@dataclass(frozen=True, slots=True)
class Status:
    """What `python -m bot status` reports."""

    schema: str | None
    head: str | None
    users: int
    subscribers: int
    due_backlog: int
    last_tick: datetime | None
    workers: list[tuple[str, datetime | None]]
    deliveries_today: dict[str, int]

    def lines(self) -> list[str]:
        state = "up to date" if self.schema == self.head else f"needs upgrade to {self.head}"
        tick = self.last_tick.isoformat(timespec="seconds") if self.last_tick else "never"
        outcomes = ", ".join(f"{k} {v}" for k, v in sorted(self.deliveries_today.items()))
        result = [
            "database: reachable",
            f"schema: {self.schema or 'empty'} ({state})",
            f"users: {self.users}",
            f"subscribers: {self.subscribers}",
            f"due backlog: {self.due_backlog}",
            f"last engine tick: {tick}",
            f"deliveries today: {outcomes or 'none'}",
        ]
        result += [
            f"worker {name}: last tick {at.isoformat(timespec='seconds') if at else 'never'}"
            for name, at in self.workers
        ]
        return result


async def status(engine: AsyncEngine, now: datetime | None = None) -> Status:
    """Read the numbers an operator checks first."""
    moment = now or utcnow()
    schema = await migrate.current_revision(engine)
    head = migrate.head_revision()
    if schema is None:
        return Status(None, head, 0, 0, 0, None, [], {})
    sessions = create_sessionmaker(engine)
    day_start = moment.replace(hour=0, minute=0, second=0, microsecond=0)
    async with sessions() as session:
        users = await session.scalar(select(func.count()).select_from(User)) or 0
        subscribers = (
            await session.scalar(
                select(func.count())
                .select_from(Schedule)
                .join(User, User.id == Schedule.user_id)
                .where(
                    Schedule.kind == ScheduleKind.DAILY_TIP,
                    Schedule.active.is_(True),
                    User.is_active.is_(True),
                )
            )
            or 0
        )
        backlog = (
            await session.scalar(
                select(func.count()).where(
                    Schedule.active.is_(True), Schedule.next_run_at <= moment
                )
            )
            or 0
        )
        workers = [
            (name, at)
            for name, at in await session.execute(
                select(Worker.name, Worker.last_tick_at)
                .where(Worker.last_tick_at >= moment - timedelta(hours=1))
                .order_by(Worker.name)
            )
        ]
        last_tick = await session.scalar(select(func.max(Worker.last_tick_at)))
        outcomes = {
            status.value: count
            for status, count in await session.execute(
                select(Delivery.status, func.count())
                .where(Delivery.claimed_at >= day_start)
                .group_by(Delivery.status)
            )
        }
    return Status(schema, head, users, subscribers, backlog, last_tick, workers, outcomes)


def backup_sqlite(database_url: str, target: Path) -> Path:
    """A consistent copy of a live SQLite database, through SQLite's online backup API."""
    source = sqlite_file(database_url)
    if source is None:
        raise ConfigError(
            "DATABASE_URL: `db backup` copies SQLite databases; for PostgreSQL use pg_dump "
            "(see README, 'Backups')"
        )
    if not source.exists():
        raise ConfigError(f"DATABASE_URL: {source} does not exist")
    target.parent.mkdir(parents=True, exist_ok=True)
    with closing(sqlite3.connect(source)) as src, closing(sqlite3.connect(target)) as dst:
        src.backup(dst)
    return target


async def copy_database(source_url: str, target_url: str) -> dict[str, int]:
    """Copy every row from one database to another (migrated, and empty) one."""
    source = create_engine(source_url)
    target = create_engine(target_url)
    copied: dict[str, int] = {}
    try:
        await migrate.upgrade(source)
        await migrate.upgrade(target)
        async with target.connect() as connection:
            for table in Base.metadata.sorted_tables:
                if await connection.scalar(select(func.count()).select_from(table)):
                    raise ConfigError(
                        f"{target_url.split('://')[0]}: table {table.name} is not empty"
                    )
        for table in Base.metadata.sorted_tables:
            count = 0
            async with source.connect() as reader, target.begin() as writer:
                result = await reader.stream(select(table))
                async for chunk in result.partitions(COPY_CHUNK):
                    rows = [dict(row._mapping) for row in chunk]
                    await writer.execute(insert(table), rows)
                    count += len(rows)
            copied[table.name] = count
        if target.dialect.name == "postgresql":
            await _reset_sequences(target)
    finally:
        await source.dispose()
        await target.dispose()
    return copied


async def _reset_sequences(engine: AsyncEngine) -> None:
    """After copying ids in, PostgreSQL's sequences must continue after the largest one."""
    async with engine.begin() as connection:
        for table in Base.metadata.sorted_tables:
            for column in table.primary_key.columns:
                if column.autoincrement is True or (
                    column.autoincrement == "auto" and column.type.python_type is int
                ):
                    sequence = await connection.scalar(
                        text("SELECT pg_get_serial_sequence(:t, :c)"),
                        {"t": table.name, "c": column.name},
                    )
                    if sequence:
                        largest = f"SELECT MAX({column.name}) FROM {table.name}"
                        await connection.execute(
                            text(
                                f"SELECT setval('{sequence}', COALESCE(({largest}), 0) + 1, false)"
                            )
                        )
