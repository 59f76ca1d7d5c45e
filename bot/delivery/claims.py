"""The engine's hot statements: the claim's three (read the due schedules, insert their
deliveries, advance them) and the two that record outcomes (finish deliveries, record the tips
shown).

They are built once; each batch only binds its values. Schedule ids go in as ONE parameter (a
JSON array on SQLite, an array on PostgreSQL), so the SQL text stays the same and the driver
reuses its prepared statement instead of parsing hundreds of placeholders. On SQLite a batch of
outcomes is one JSON parameter too: one statement instead of a row of parameters per delivery,
each converted by SQLAlchemy and bound and stepped by the driver while the bot is sending.

On SQLite the statements run on the driver connection (aiosqlite) itself, inside the session's
transaction: SQLAlchemy's asyncio adapter and result rows cost about three times what SQLite
takes to answer, and this is the engine's hottest path (measured in tests/benchmarks/claiming.py).
Parameters and results are converted with the column types' own SQLAlchemy processors, so the
stored text is exactly what every other query writes and reads. Other databases use Core.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import date, datetime, time
from typing import Any, Protocol, cast

from sqlalchemy import (
    JSON,
    BigInteger,
    ColumnElement,
    Dialect,
    Table,
    any_,
    bindparam,
    func,
    select,
    update,
)
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql import ClauseElement, Executable
from sqlalchemy.sql.compiler import SQLCompiler

from bot.db.models import Delivery, DeliveryStatus, Schedule, ScheduleKind, TipView

# One due schedule: id, user id, kind, local time, zone, weekday, paused until, next run.
DueRow = tuple[int, int, ScheduleKind, time, str, int | None, datetime | None, datetime]
# One inserted delivery: its id, the user and the kind.
NewDelivery = tuple[int, int, ScheduleKind]

# One outcome: delivery id, status, Telegram's message id, error, tip sent.
Outcome = tuple[int, DeliveryStatus, int | None, str | None, str | None]
# One tip shown: user id, tip id, topic id.
Shown = tuple[int, str, str]

_DELIVERIES = cast(Table, Delivery.__table__)
_SCHEDULES = cast(Table, Schedule.__table__)
_TIP_VIEWS = cast(Table, TipView.__table__)
_DUE_COLUMNS = (
    _SCHEDULES.c.id,
    _SCHEDULES.c.user_id,
    _SCHEDULES.c.kind,
    _SCHEDULES.c.local_time,
    _SCHEDULES.c.timezone,
    _SCHEDULES.c.weekday,
    _SCHEDULES.c.paused_until,
    _SCHEDULES.c.next_run_at,
)
_INSERTED = ("user_id", "kind", "local_date", "sequence", "due_at")
_STATUS = ("claimed_at", "status", "finished_at", "error")
LATE_ERROR = "late after downtime"


def upsert_insert(postgres: bool) -> Callable[[Any], Any]:
    """The dialect's INSERT with ON CONFLICT (PostgreSQL's is imported only when used: the
    SQLite bot never loads that dialect)."""
    if postgres:
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert
    return sqlite_insert


def _among(postgres: bool) -> ColumnElement[bool]:
    """`schedules.id` is one of the ids bound to `ids`."""
    if postgres:
        from sqlalchemy.dialects.postgresql import ARRAY

        return _SCHEDULES.c.id == any_(bindparam("ids", type_=ARRAY(BigInteger)))
    listed = func.json_each(bindparam("ids", type_=JSON)).table_valued("value")
    return _SCHEDULES.c.id.in_(select(listed.c.value))


def due_query(postgres: bool) -> Executable:
    """Due schedules, earliest first; on PostgreSQL locked, skipping rows another worker has."""
    query = (
        select(*_DUE_COLUMNS)
        .where(_SCHEDULES.c.active.is_(True), _SCHEDULES.c.next_run_at <= bindparam("now"))
        .order_by(_SCHEDULES.c.next_run_at)
        .limit(bindparam("limit"))
    )
    return query.with_for_update(skip_locked=True) if postgres else query


def insert_deliveries(postgres: bool) -> Executable:
    """A delivery row for each of the schedules `ids` on `local_date`, unless one exists."""
    columns = _DELIVERIES.c
    rows = select(
        _SCHEDULES.c.user_id,
        _SCHEDULES.c.kind,
        bindparam("local_date", type_=columns.local_date.type),
        _SCHEDULES.c.snoozes,
        _SCHEDULES.c.next_run_at,
        *(bindparam(name, type_=columns[name].type) for name in _STATUS),
    ).where(_among(postgres))
    statement: Executable = (
        upsert_insert(postgres)(_DELIVERIES)
        .from_select([*_INSERTED, *_STATUS], rows)
        .on_conflict_do_nothing(index_elements=["user_id", "kind", "local_date", "sequence"])
        .returning(columns.id, columns.user_id, columns.kind)
    )
    return statement


def advance_schedules(postgres: bool) -> Executable:
    """Moves the schedules `ids` to `next_run` (as changed at `now`)."""
    instant = _SCHEDULES.c.next_run_at.type
    return (
        update(_SCHEDULES)
        .where(_among(postgres))
        .values(
            next_run_at=bindparam("next_run", type_=instant),
            snoozes=0,
            updated_at=bindparam("now", type_=instant),
        )
    )


def _fields(json_row: ColumnElement[Any], *types: Any) -> list[ColumnElement[Any]]:
    """The items of a JSON array row, as columns of these types."""
    return [func.json_extract(json_row, f"$[{n}]", type_=kind) for n, kind in enumerate(types)]


def finish_deliveries(batched: bool) -> Executable:
    """The outcome of each delivery: executed with one row of parameters per delivery, or
    (`batched`, SQLite) with all of them as one JSON array `outcomes`."""
    columns = _DELIVERIES.c
    if not batched:
        return update(_DELIVERIES).where(columns.id == bindparam("delivery_id"))
    row = func.json_each(bindparam("outcomes", type_=JSON)).table_valued("value").alias("o")
    delivery_id, status, message_id, error, tip_id = _fields(
        row.c.value,
        columns.id.type,
        columns.status.type,
        columns.telegram_message_id.type,
        columns.error.type,
        columns.tip_id.type,
    )
    return (
        update(_DELIVERIES)
        .where(columns.id == delivery_id)
        .values(
            status=status,
            finished_at=bindparam("now", type_=columns.finished_at.type),
            telegram_message_id=message_id,
            error=error,
            tip_id=tip_id,
        )
    )


def record_views(batched: bool) -> Executable:
    """A tip view for each tip shown at `now`: one row of parameters per view, or (`batched`,
    SQLite) all of them as one JSON array `shown`."""
    columns = _TIP_VIEWS.c
    if not batched:
        return _TIP_VIEWS.insert()
    row = func.json_each(bindparam("shown", type_=JSON)).table_valued("value").alias("v")
    fields = _fields(row.c.value, columns.user_id.type, columns.tip_id.type, columns.topic_id.type)
    shown_at = bindparam("now", type_=columns.shown_at.type)
    return _TIP_VIEWS.insert().from_select(
        ["user_id", "tip_id", "topic_id", "shown_at"], select(*fields, shown_at).select_from(row)
    )


def _values(local_date: date, now: datetime, fresh: bool) -> dict[str, Any]:
    return {
        "local_date": local_date,
        "claimed_at": now,
        "status": DeliveryStatus.CLAIMED if fresh else DeliveryStatus.SKIPPED,
        "finished_at": None if fresh else now,
        "error": None if fresh else LATE_ERROR,
    }


class ClaimStatements(Protocol):
    """Runs the claim's statements on a connection inside the claim's transaction."""

    async def due(self, connection: AsyncConnection, now: datetime, limit: int) -> list[DueRow]:
        """Up to `limit` schedules due at `now`, earliest first."""

    async def insert(
        self,
        connection: AsyncConnection,
        ids: Sequence[int],
        local_date: date,
        now: datetime,
        fresh: bool,
    ) -> list[NewDelivery]:
        """Deliveries for these schedules on `local_date` (claimed, or skipped if not fresh)."""

    async def advance(
        self, connection: AsyncConnection, ids: Sequence[int], next_run: datetime, now: datetime
    ) -> None:
        """These schedules run next at `next_run`."""

    async def finish(
        self, connection: AsyncConnection, outcomes: Sequence[Outcome], now: datetime
    ) -> None:
        """Record how these deliveries ended (at `now`) and the tip each one sent."""

    async def shown(
        self, connection: AsyncConnection, views: Sequence[Shown], now: datetime
    ) -> None:
        """Record that these tips were shown at `now`."""


class CoreStatements:
    """The claim through SQLAlchemy Core: any database."""

    def __init__(self, postgres: bool) -> None:
        self._due = due_query(postgres)
        self._insert = insert_deliveries(postgres)
        self._advance = advance_schedules(postgres)
        self._finish = finish_deliveries(batched=False)
        self._shown = record_views(batched=False)

    async def due(self, connection: AsyncConnection, now: datetime, limit: int) -> list[DueRow]:
        result = await connection.execute(self._due, {"now": now, "limit": limit})
        return cast(list[DueRow], result.all())

    async def insert(
        self,
        connection: AsyncConnection,
        ids: Sequence[int],
        local_date: date,
        now: datetime,
        fresh: bool,
    ) -> list[NewDelivery]:
        values = {"ids": list(ids), **_values(local_date, now, fresh)}
        result = await connection.execute(self._insert, values)
        return cast(list[NewDelivery], result.all())

    async def advance(
        self, connection: AsyncConnection, ids: Sequence[int], next_run: datetime, now: datetime
    ) -> None:
        values = {"ids": list(ids), "next_run": next_run, "now": now}
        await connection.execute(self._advance, values)

    async def finish(
        self, connection: AsyncConnection, outcomes: Sequence[Outcome], now: datetime
    ) -> None:
        rows = [
            {
                "delivery_id": delivery_id,
                "status": status,
                "finished_at": now,
                "telegram_message_id": message_id,
                "error": error,
                "tip_id": tip_id,
            }
            for delivery_id, status, message_id, error, tip_id in outcomes
        ]
        if rows:
            await connection.execute(self._finish, rows)

    async def shown(
        self, connection: AsyncConnection, views: Sequence[Shown], now: datetime
    ) -> None:
        rows = [
            {"user_id": user_id, "tip_id": tip_id, "topic_id": topic_id, "shown_at": now}
            for user_id, tip_id, topic_id in views
        ]
        if rows:
            await connection.execute(self._shown, rows)


Convert = Callable[[Any], Any]


def _processor(kind: Any, dialect: Dialect, *, result: bool = False) -> Convert:
    """The SQLAlchemy conversion of values of this column type, or identity if it has none."""
    adapted = kind.dialect_impl(dialect)
    made = adapted.result_processor(dialect, None) if result else adapted.bind_processor(dialect)
    return made if made is not None else (lambda value: value)


class _Compiled:
    """One statement compiled for SQLite: its text and its parameters in order (those the
    statement fixes itself, such as an OFFSET of 0, keep their value)."""

    def __init__(self, statement: Executable, dialect: Dialect) -> None:
        compiled = cast(SQLCompiler, cast(ClauseElement, statement).compile(dialect=dialect))
        self.sql = str(compiled)
        self.names = list(compiled.positiontup or ())
        binds = {name: compiled.binds[name] for name in self.names}
        self.convert = {name: _processor(bind.type, dialect) for name, bind in binds.items()}
        self.fixed = {name: bind.value for name, bind in binds.items() if bind.value is not None}

    def parameters(self, values: dict[str, Any]) -> tuple[Any, ...]:
        fixed = self.fixed
        return tuple(
            self.convert[name](values[name] if name in values else fixed[name])
            for name in self.names
        )


class SqliteStatements:
    """The claim on SQLite's driver connection, with SQLAlchemy's conversions of each type."""

    def __init__(self, dialect: Dialect) -> None:
        self._due = _Compiled(due_query(False), dialect)
        self._insert = _Compiled(insert_deliveries(False), dialect)
        self._advance = _Compiled(advance_schedules(False), dialect)
        self._finish = _Compiled(finish_deliveries(batched=True), dialect)
        self._shown = _Compiled(record_views(batched=True), dialect)
        self._status = _processor(_DELIVERIES.c.status.type, dialect)
        columns = _SCHEDULES.c
        self._kind = _processor(columns.kind.type, dialect, result=True)
        self._time = _processor(columns.local_time.type, dialect, result=True)
        self._instant = _processor(columns.next_run_at.type, dialect, result=True)

    @staticmethod
    async def _rows(
        connection: AsyncConnection, compiled: _Compiled, values: dict[str, Any]
    ) -> list[Any]:
        raw = (await connection.get_raw_connection()).driver_connection
        assert raw is not None
        cursor = await raw.execute(compiled.sql, compiled.parameters(values))
        try:
            return list(await cursor.fetchall())
        finally:
            await cursor.close()

    async def due(self, connection: AsyncConnection, now: datetime, limit: int) -> list[DueRow]:
        rows = await self._rows(connection, self._due, {"now": now, "limit": limit})
        # Many rows share a kind, a time and a due minute: convert each distinct text once.
        kinds: dict[str, ScheduleKind] = {}
        times: dict[str, time] = {}
        instants: dict[str | None, datetime | None] = {None: None}
        decoded: list[DueRow] = []
        for schedule_id, user_id, kind, local_time, zone, weekday, paused, at in rows:
            if (kind_value := kinds.get(kind)) is None:
                kind_value = kinds[kind] = self._kind(kind)
            if (time_value := times.get(local_time)) is None:
                time_value = times[local_time] = self._time(local_time)
            if paused not in instants:
                instants[paused] = self._instant(paused)
            if (at_value := instants.get(at)) is None:
                at_value = instants[at] = self._instant(at)
            decoded.append(
                (
                    schedule_id,
                    user_id,
                    kind_value,
                    time_value,
                    zone,
                    weekday,
                    instants[paused],
                    cast(datetime, at_value),
                )
            )
        return decoded

    async def insert(
        self,
        connection: AsyncConnection,
        ids: Sequence[int],
        local_date: date,
        now: datetime,
        fresh: bool,
    ) -> list[NewDelivery]:
        values = {"ids": list(ids), **_values(local_date, now, fresh)}
        rows = await self._rows(connection, self._insert, values)
        kinds: dict[str, ScheduleKind] = {}
        inserted: list[NewDelivery] = []
        for delivery_id, user_id, kind in rows:
            if (kind_value := kinds.get(kind)) is None:
                kind_value = kinds[kind] = self._kind(kind)
            inserted.append((delivery_id, user_id, kind_value))
        return inserted

    async def advance(
        self, connection: AsyncConnection, ids: Sequence[int], next_run: datetime, now: datetime
    ) -> None:
        values = {"ids": list(ids), "next_run": next_run, "now": now}
        await self._rows(connection, self._advance, values)

    async def finish(
        self, connection: AsyncConnection, outcomes: Sequence[Outcome], now: datetime
    ) -> None:
        if not outcomes:
            return
        status = self._status
        rows = [
            [delivery_id, status(state), message_id, error, tip_id]
            for delivery_id, state, message_id, error, tip_id in outcomes
        ]
        await self._rows(connection, self._finish, {"outcomes": rows, "now": now})

    async def shown(
        self, connection: AsyncConnection, views: Sequence[Shown], now: datetime
    ) -> None:
        if views:
            await self._rows(connection, self._shown, {"shown": list(views), "now": now})


def statements_for(dialect: Dialect) -> ClaimStatements:
    """The fastest correct way to run a claim on this database."""
    if dialect.name == "sqlite":
        return SqliteStatements(dialect)
    return CoreStatements(dialect.name == "postgresql")
