"""Claiming, in-process: users/s of `DeliveryEngine.claim` (the transaction that takes due
schedules), of `DeliveryEngine.prepare` (chats and tip choice, after it), and the due query's
latency."""

from __future__ import annotations

import contextlib
import sqlite3
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import event, update
from telegram import Bot

from bot.content import Content
from bot.db.engine import create_engine, create_sessionmaker
from bot.db.models import Schedule, utcnow
from bot.delivery.claims import CoreStatements
from bot.delivery.engine import DeliveryEngine
from bot.delivery.ratelimit import RateBudget
from bot.delivery.sender import Sender
from tests.benchmarks.dataset import create_database, due_subscribers, sqlite_url
from tests.benchmarks.harness import BenchmarkError, Measure, log, median, percentile
from tests.fakes.telegram_api import TEST_TOKEN

CLAIM_TARGET = 20_000  # users/s
DUE_P99_TARGET_MS = 5.0
BATCH = 500
WARMUP = 10


@dataclass(frozen=True, slots=True)
class ClaimOptions:
    users: int
    tip_views: int
    past_deliveries: int
    due: int
    runs: int


def _query_plan(path: Path, statement: str, parameters: Sequence[Any]) -> list[str]:
    """SQLite's plan for the due query exactly as the engine sent it."""
    with contextlib.closing(sqlite3.connect(path)) as connection:
        rows = connection.execute("EXPLAIN QUERY PLAN " + statement, parameters).fetchall()
    return [str(row[-1]) for row in rows]


async def run(
    content: Content, folder: Path, options: ClaimOptions
) -> tuple[list[Measure], dict[str, Any]]:
    path = folder / "claiming.db"
    now = utcnow()
    people = due_subscribers(options.users, now, list(content.topics))
    log(
        f"claiming: writing {options.users:,} due subscribers with {options.tip_views} tip views "
        "each"
    )
    started = time.perf_counter()
    await create_database(
        path,
        people,
        content,
        tip_views=options.tip_views,
        past_deliveries=options.past_deliveries,
    )
    build_seconds = time.perf_counter() - started

    engine = create_engine(sqlite_url(path))
    sessions = create_sessionmaker(engine)
    delivery = DeliveryEngine(
        sessions=sessions,
        content=content,
        sender=Sender(Bot(TEST_TOKEN), RateBudget(1.0)),  # never used: nothing is sent here
        batch_size=BATCH,
    )
    try:
        log(f"claiming: claim(now, {BATCH}) and prepare() until nothing is due")
        claimed, skipped, elapsed, batches, preparing = await _claim_all(delivery)
        if claimed + skipped != options.users:
            raise BenchmarkError(f"claimed {claimed} + skipped {skipped} of {options.users}")
        # A realistic moment: the whole table is scheduled, a small share of it is due.
        due_count = min(options.due, options.users)
        step = max(1, options.users // due_count)
        due_ids = [p.user_id for p in people[::step]][:due_count]
        async with sessions() as session, session.begin():
            await session.execute(
                update(Schedule)
                .where(Schedule.user_id.in_(due_ids))
                .values(next_run_at=utcnow() - timedelta(minutes=1))
            )
        log(f"claiming: due query x{options.runs} with {due_count:,} of {options.users:,} due")
        due = await _due_query(delivery, options.runs, min(BATCH, due_count))
    finally:
        await engine.dispose()
    due["plan"] = _query_plan(path, due["sql"], due.pop("parameters"))

    rate = claimed / elapsed
    prepare_rate = claimed / preparing
    both_rate = claimed / (elapsed + preparing)
    select_ms, sql_ms = due.pop("select_due_ms"), due.pop("sql_ms")
    who = f"{due_count:,} of {options.users:,} due"
    measures = [
        Measure(
            "claim.users_per_second",
            f"claim(now, {BATCH}) on {options.users:,} due users",
            rate,
            "users/s",
            f">= {CLAIM_TARGET:,} users/s",
            rate >= CLAIM_TARGET,
        ),
        Measure(
            "claim.prepare_users_per_second",
            f"prepare(): chats, histories, tip choice ({options.tip_views} views each)",
            prepare_rate,
            "users/s",
        ),
        Measure(
            "claim.claim_and_prepare_users_per_second",
            "claim() and prepare() together",
            both_rate,
            "users/s",
        ),
        Measure(
            "claim.due_sql_p50_ms",
            f"due SQL alone, from the driver, p50 ({who})",
            median(sql_ms),
            "ms",
        ),
        Measure(
            "claim.due_sql_p99_ms",
            f"due SQL alone, from the driver, p99 ({who})",
            percentile(sql_ms, 99),
            "ms",
            f"<= {DUE_P99_TARGET_MS:g} ms",
            percentile(sql_ms, 99) <= DUE_P99_TARGET_MS,
        ),
        Measure(
            "claim.due_select_p50_ms", f"due query, decoded, p50 ({who})", median(select_ms), "ms"
        ),
        Measure(
            "claim.due_select_p99_ms",
            f"due query, decoded, p99 ({who})",
            percentile(select_ms, 99),
            "ms",
            f"<= {DUE_P99_TARGET_MS:g} ms",
            percentile(select_ms, 99) <= DUE_P99_TARGET_MS,
        ),
    ]
    batch_ms = [b * 1000 for b in batches]
    details = {
        "users": options.users,
        "tip_views_per_user": options.tip_views,
        "past_deliveries_per_user": options.past_deliveries,
        "database_build_seconds": round(build_seconds, 2),
        "claimed": claimed,
        "skipped": skipped,
        "claim_seconds": elapsed,
        "prepare_seconds": preparing,
        "claim_batches": len(batch_ms),
        "claim_batch_ms": {
            "p50": median(batch_ms),
            "p99": percentile(batch_ms, 99),
            "max": max(batch_ms),
        },
        "due_query": {
            "due": due_count,
            "limit": BATCH,
            "runs": options.runs,
            "warmup_runs": WARMUP,
            "sql_alone_ms": _distribution(sql_ms),
            "select_due_ms": _distribution(select_ms),
            **due,
        },
    }
    return measures, details


def _distribution(values: Sequence[float]) -> dict[str, float]:
    return {
        "p50": median(values),
        "p90": percentile(values, 90),
        "p99": percentile(values, 99),
        "max": max(values),
    }


async def _claim_all(delivery: DeliveryEngine) -> tuple[int, int, float, list[float], float]:
    """claim(now, BATCH) in a loop until nothing is due, each batch then prepared:
    claimed, skipped, seconds claiming, each claim's seconds, seconds preparing."""
    claim_at = utcnow()
    claimed = skipped = 0
    batches: list[float] = []
    preparing = 0.0
    while True:
        t0 = time.perf_counter()
        claims, late = await delivery.claim(claim_at, BATCH)
        t1 = time.perf_counter()
        if not claims and not late:
            break
        ready = await delivery.prepare(claims)
        preparing += time.perf_counter() - t1
        if len(ready) != len(claims) or any(c.tip_id is None for c in ready):
            raise BenchmarkError("prepare() left a claim without its tip")
        batches.append(t1 - t0)
        claimed += len(claims)
        skipped += late
    return claimed, skipped, sum(batches), batches, preparing


async def _due_query(delivery: DeliveryEngine, runs: int, expected: int) -> dict[str, Any]:
    """Time the engine's due query as it runs it (rows converted to Python values), and the
    very SQL it sends fetched straight from the driver, alternately, on one connection."""
    engine = delivery.sessions.kw["bind"]
    query_now = utcnow()
    sent: list[tuple[str, Sequence[Any]]] = []

    def capture(*args: Any) -> None:
        sent.append((args[2], args[3]))

    event.listen(engine.sync_engine, "before_cursor_execute", capture)
    try:
        async with delivery.sessions() as session:
            await CoreStatements(postgres=False).due(await session.connection(), query_now, BATCH)
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", capture)
    statement, parameters = sent[-1]
    select_ms: list[float] = []
    sql_ms: list[float] = []
    for n in range(WARMUP + runs):
        async with delivery.sessions() as session:
            connection = await session.connection()
            driver = (await connection.get_raw_connection()).driver_connection
            t0 = time.perf_counter()
            due = await delivery.statements.due(connection, query_now, BATCH)
            t1 = time.perf_counter()
            cursor = await driver.execute(statement, tuple(parameters))
            rows = await cursor.fetchall()
            t2 = time.perf_counter()
            await cursor.close()
        if len(due) != expected or len(rows) != expected:
            raise BenchmarkError(f"due query returned {len(due)} rows, expected {expected}")
        if n >= WARMUP:
            select_ms.append((t1 - t0) * 1000)
            sql_ms.append((t2 - t1) * 1000)
    return {
        "select_due_ms": select_ms,
        "sql_ms": sql_ms,
        "sql": " ".join(statement.split()),
        "parameters": list(parameters),
        "statements": type(delivery.statements).__name__,
    }
