"""Check-ins, in-process: encrypted writes from concurrent users, /history and /trends.

The database holds `users` people with `checkins` encrypted check-ins between them (~100 each,
over the last 100 local days, several a day for some), written in roughly chronological order
the way a running bot would have written them, so one person's rows are spread over the file.
It is built with bulk inserts of real AES-GCM payloads (`Keyring.encrypt_json`, the same JSON
as `checkins.save`); with `--keep` it is cached under results/cache/, keyed by its sizes and the
schema's migration head, and every run works on a copy of it.

Then, on one engine with the bot's pragmas (`bot.db.engine.create_engine`):

1. /history, the data part: the user, `entries_since` 14 days (read + decrypt), `daily_points`
   and the table text. The table is formatted inline in `bot.handlers.checkin.history`, so
   `history_text` repeats those lines; the real handler is then run with Telegram stubbed out
   (it also records the visit, a write) and its reply must equal `history_text`'s.
2. /trends: the data read (user, `entries_since` 30 days, `daily_points`, the caption) and
   `render_trends` of it, timed apart, both called exactly as the handler calls them.
3. Writes: `writers` asyncio tasks, one user each (~100 check-ins already), each a loop of
   the bot's CheckinWriter, as the /checkin handler does.

The reads run before the writes so that no reader meets a writer's extra rows.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import math
import os
import random
import sqlite3
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from datetime import time as clock_time
from html import escape
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast
from zoneinfo import ZoneInfo

from sqlalchemy import event, func, insert, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from telegram import Bot, Update

from bot.charts import ChartLabels, DayPoint, render_trends
from bot.clock import Clock
from bot.config import Settings
from bot.content import Content
from bot.crypto import Keyring, KeyringHolder, generate_key
from bot.db import migrate
from bot.db.engine import create_engine, create_sessionmaker, unit_of_work
from bot.db.models import CheckIn, User
from bot.delivery.engine import DeliveryEngine
from bot.delivery.ratelimit import RateBudget
from bot.delivery.sender import Sender
from bot.handlers import checkin as checkin_handler
from bot.handlers.common import Context
from bot.runtime import RUNTIME_KEY, Runtime
from bot.services import checkins
from bot.services.checkin_writer import CheckinWriter
from bot.services.checkins import Entry, Scores, aad_for
from bot.services.zones import ZoneDirectory
from bot.views import chart_labels
from tests.benchmarks.dataset import ZONES, copy_database, sqlite_url
from tests.benchmarks.harness import ROOT, BenchmarkError, Measure, log, median, percentile
from tests.fakes.telegram_api import TEST_TOKEN

WRITE_RATE_TARGET = 1_000.0  # writes/s
WRITE_P99_TARGET_MS = 50.0
HISTORY_P99_TARGET_MS = 50.0
RENDER_P50_TARGET_MS = 300.0

LAYOUT = 1  # bump when the generated data changes, so cached databases are rebuilt
FIRST_USER_ID = 300_000_001
DAYS = 100  # local days of history per user, ending today
INSERT_ROWS = 50_000  # check-ins per bulk-insert transaction
USER_ROWS = 10_000
READ_WARMUP = 20
HANDLER_SHARE = 4  # the stubbed /history handler runs history_runs / HANDLER_SHARE times
MAX_WRITE_ERRORS = 100
SEED = 7
NOTES = (
    "slept badly",
    "long day at the desk",
    "walked 40 minutes, felt looser",
    "flare after lifting boxes",
    "stretching helped",
    "stressful meeting",
)


@dataclass(frozen=True, slots=True)
class CheckinOptions:
    users: int
    checkins: int
    writers: int
    write_seconds: float
    history_runs: int
    trends_runs: int
    cache: Path | None  # a folder to keep the built database in and reuse it from, or None


@dataclass(frozen=True, slots=True)
class Dataset:
    """A built database and what is needed to use it: its key and the moment it ends at."""

    path: Path
    key: str
    anchor: datetime  # "now" for the data: every check-in is before it
    build_seconds: float
    cached: bool
    built_at: str

    def keyring(self) -> KeyringHolder:
        holder, _ = KeyringHolder.load(self.key, self.path.with_suffix(".unused-key"))
        return holder


class FixedClock(Clock):
    """The data's "now", standing still, for the stubbed handler."""

    def __init__(self, moment: datetime) -> None:
        super().__init__()
        self._moment = moment

    def now(self) -> datetime:
        return self._moment


# --------------------------------------------------------------------------------------------
# The database
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Person:
    user_id: int
    zone: ZoneInfo
    per_day: bytearray  # check-ins on each of the DAYS local days, oldest first
    levels: tuple[float, float, float, float]  # usual pain, stress, mood, sleep


def _counts(users: int, total: int, rng: random.Random) -> list[int]:
    """`total` split over `users`, each near the mean (±30 %), summing exactly to `total`."""
    base, extra = divmod(total, users)
    counts = [base + (1 if n < extra else 0) for n in range(users)]
    for n in range(0, users - 1, 2):
        shift = rng.randint(0, min(counts[n], counts[n + 1]) * 3 // 10)
        counts[n] += shift
        counts[n + 1] -= shift
    rng.shuffle(counts)
    return counts


def _people(users: int, total: int, rng: random.Random) -> list[_Person]:
    """Most check in about once a day; a quarter twice and some three times, on fewer days."""
    people = []
    for n, count in enumerate(_counts(users, total, rng)):
        per_day = bytearray(DAYS)
        if count:
            often = rng.choices((1, 2, 3), weights=(60, 25, 15))[0]
            active = min(DAYS, max(1, math.ceil(count / often)))
            days = sorted(rng.sample(range(DAYS), active))
            each, left = divmod(count, active)
            for k, day in enumerate(days):
                per_day[day] = each + (1 if k >= active - left else 0)  # the latest get more
        levels = (
            rng.uniform(1, 7),
            rng.uniform(1, 7),
            rng.uniform(2, 4.5),
            rng.uniform(2, 4.5),
        )
        people.append(_Person(FIRST_USER_ID + n, ZoneInfo(rng.choice(ZONES)), per_day, levels))
    return people


def _score(rng: random.Random, level: float, low: int, high: int) -> int:
    return min(high, max(low, round(rng.gauss(level, 1.4))))


def _payload(rng: random.Random, person: _Person) -> dict[str, Any]:
    """What `checkins._to_json(Scores(...))` makes: set fields only, in the same order."""
    pain, stress, mood, sleep = person.levels
    data: dict[str, Any] = {
        "pain": _score(rng, pain, 0, 10),
        "stress": _score(rng, stress, 0, 10),
    }
    if rng.random() < 0.85:
        data["mood"] = _score(rng, mood, 1, 5)
    if rng.random() < 0.75:
        data["sleep"] = _score(rng, sleep, 1, 5)
    if rng.random() < 0.08:
        data["note"] = rng.choice(NOTES)
    return data


_Row = tuple[int, datetime, date, bytes, bytes]
COLUMNS = ("user_id", "created_at", "local_date", "key_id", "payload")  # the order of a _Row


def _day_rows(
    people: Sequence[_Person], day: int, anchor: datetime, keyring: Keyring, rng: random.Random
) -> list[_Row]:
    """Every check-in on local day `day` (0 = the oldest), encrypted, in time order."""
    rows: list[_Row] = []
    key_id = keyring.current_id
    for person in people:
        count = person.per_day[day]
        if not count:
            continue
        today = anchor.astimezone(person.zone).date()
        local = today - timedelta(days=DAYS - 1 - day)
        aad = aad_for(person.user_id)
        for _ in range(count):
            at = clock_time(rng.randint(7, 22), rng.randint(0, 59), rng.randint(0, 59))
            created = datetime.combine(local, at, tzinfo=person.zone).astimezone(UTC)
            if created > anchor:  # later today than "now": make it yesterday's
                created -= timedelta(days=1)
            payload = keyring.encrypt_json(_payload(rng, person), aad=aad)
            local_date = created.astimezone(person.zone).date()
            rows.append((person.user_id, created, local_date, key_id, payload))
    rows.sort(key=lambda row: row[1])
    return rows


def _identity(value: Any) -> Any:
    return value


class _Inserter:
    """Check-ins sent straight to the driver with `executemany`, each value through the bind
    processor SQLAlchemy itself applies for this dialect, so they are stored exactly as
    `checkins.save` stores them (a third of the time of an ORM or Core bulk insert)."""

    def __init__(self, engine: AsyncEngine) -> None:
        dialect = engine.dialect
        table = CheckIn.__table__
        self._binders = [
            table.c[name].type.dialect_impl(dialect).bind_processor(dialect) or _identity
            for name in COLUMNS
        ]
        self._sql = (
            f"INSERT INTO {CheckIn.__tablename__} ({', '.join(COLUMNS)}) "
            f"VALUES ({', '.join('?' * len(COLUMNS))})"
        )
        self._engine = engine

    async def insert(self, rows: Sequence[_Row]) -> None:
        user, created, local, key, payload = self._binders
        bound = [(user(r[0]), created(r[1]), local(r[2]), key(r[3]), payload(r[4])) for r in rows]
        async with self._engine.begin() as connection:
            await connection.exec_driver_sql(self._sql, bound)


async def build_database(path: Path, users: int, total: int, key: str, anchor: datetime) -> None:
    """A fresh, migrated database: `users` people who agreed to store check-ins, and `total`
    encrypted check-ins between them, inserted day by day in chunks of INSERT_ROWS."""
    rng = random.Random(SEED)
    holder, _ = KeyringHolder.load(key, path.with_suffix(".unused-key"))
    keyring = holder.get()
    people = _people(users, total, rng)
    engine = create_engine(sqlite_url(path))
    try:
        await migrate.upgrade(engine)
        sessions = create_sessionmaker(engine)
        joined = anchor - timedelta(days=DAYS + 10)
        for start in range(0, users, USER_ROWS):
            rows = [
                {
                    "id": person.user_id,
                    "chat_id": person.user_id,
                    "language_code": "en",
                    "timezone": person.zone.key,
                    "is_active": True,
                    "focus_topics": [],
                    "checkin_consent_at": joined,
                    # Started by itself after the third check-in; one in ten turned it off.
                    "weekly_summary": rng.random() >= 0.1,
                    "created_at": joined,
                    "updated_at": joined,
                }
                for person in people[start : start + USER_ROWS]
            ]
            async with unit_of_work(sessions) as session:
                await session.execute(insert(User), rows)
        # The driver's thread inserts one chunk (SQLite runs without the GIL) while another
        # thread encrypts the next.
        inserter = _Inserter(engine)
        pending: list[_Row] = []
        inserting: asyncio.Task[None] | None = None
        written = 0
        for day in range(DAYS):
            pending += await asyncio.to_thread(_day_rows, people, day, anchor, keyring, rng)
            if len(pending) >= INSERT_ROWS or day == DAYS - 1:
                if inserting is not None:
                    await inserting
                    log(f"checkins: {written:,} of {total:,} check-ins written")
                inserting = asyncio.create_task(inserter.insert(pending))
                written += len(pending)
                pending = []
        if inserting is not None:
            await inserting
        log(f"checkins: {written:,} of {total:,} check-ins written")
        async with engine.connect() as connection:
            await connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        await engine.dispose()


def _cache_name(users: int, total: int) -> str:
    head = migrate.head_revision() or "none"
    return f"checkins-{users}u-{total}c-v{LAYOUT}-{head}"


def _read_meta(meta: Path, users: int, total: int) -> dict[str, Any] | None:
    try:
        data = json.loads(meta.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("users") != users or data.get("checkins") != total:
        return None
    return data


async def prepare(folder: Path, users: int, total: int, cache: Path | None) -> Dataset:
    """The database for this run, in `folder`: built there, or copied from `cache` (built into
    the cache first if it is not there yet)."""
    target = folder / "checkins.db"
    home = cache if cache is not None else folder
    name = _cache_name(users, total)
    stored = home / f"{name}.db" if cache is not None else target
    meta = home / f"{name}.json"
    data = _read_meta(meta, users, total) if cache is not None and stored.exists() else None
    cached = data is not None
    if data is None:
        home.mkdir(parents=True, exist_ok=True)
        anchor = datetime.now(UTC).replace(microsecond=0)
        key = generate_key()
        building = stored.with_name(f".{stored.name}.{os.getpid()}.building")
        log(f"checkins: building {users:,} users and {total:,} encrypted check-ins in {building}")
        started = time.perf_counter()
        try:
            await build_database(building, users, total, key, anchor)
            os.replace(building, stored)
        finally:
            for suffix in ("", "-wal", "-shm"):
                with contextlib.suppress(OSError):
                    building.with_name(building.name + suffix).unlink()
        data = {
            "layout": LAYOUT,
            "users": users,
            "checkins": total,
            "anchor": anchor.isoformat(),
            "key": key,  # a throw-away key for synthetic data
            "build_seconds": round(time.perf_counter() - started, 2),
            "built_at": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        meta.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
        meta.chmod(0o600)
        log(f"checkins: built in {data['build_seconds']:.1f} s")
    else:
        log(f"checkins: reusing {stored} (built {data['built_at']})")
    if stored != target:
        copy_database(stored, target)
    return Dataset(
        path=target,
        key=str(data["key"]),
        anchor=datetime.fromisoformat(str(data["anchor"])),
        build_seconds=float(data["build_seconds"]),
        cached=cached,
        built_at=str(data["built_at"]),
    )


# --------------------------------------------------------------------------------------------
# /history and /trends
# --------------------------------------------------------------------------------------------


def history_text(content: Content, entries: Sequence[Entry]) -> str:
    """What /history answers for `entries`: the lines of `bot.handlers.checkin.history` after
    its database read, repeated here (the handler formats inline; `_check_history` compares)."""
    if not entries:
        return content.text("history.empty")
    notes = {e.local_date for e in entries if e.scores.note}
    rows = [content.text("history.header")]
    fmt = checkin_handler._fmt
    for point in checkins.daily_points(entries):
        mark = content.text("history.note_mark") if point.day in notes else ""
        rows.append(
            f"{point.day.strftime('%a %d %b'):<10} {fmt(point.pain, content)} "
            f"{fmt(point.stress, content):>6} {fmt(point.mood, content)} "
            f"{fmt(point.sleep, content):>5} {mark}".rstrip()
        )
    table = escape("\n".join(rows))
    return f"{content.text('history.title')}\n<pre>{table}</pre>\n{content.text('history.legend')}"


async def _entries(
    sessions: async_sessionmaker[AsyncSession],
    keyring: Keyring,
    user_id: int,
    now: datetime,
    days: int,
) -> tuple[date, list[Entry]]:
    """The handlers' read: the user for their time zone, then `days` local days of entries."""
    async with sessions() as session:
        user = await session.get(User, user_id)
        today = checkins.local_date_for(now, user.timezone if user else None)
        entries = await checkins.entries_since(
            session, keyring, user_id, today - timedelta(days=days - 1)
        )
    return today, entries


async def _history(
    sessions: async_sessionmaker[AsyncSession],
    keyring: Keyring,
    content: Content,
    people: Sequence[int],
    now: datetime,
) -> tuple[list[float], list[int]]:
    """ms per /history data part, and how many check-ins each read."""
    times: list[float] = []
    sizes: list[int] = []
    for n, user_id in enumerate(people):
        t0 = time.perf_counter()
        _, entries = await _entries(sessions, keyring, user_id, now, checkin_handler.HISTORY_DAYS)
        text = history_text(content, entries)
        elapsed = (time.perf_counter() - t0) * 1000
        if not text:
            raise BenchmarkError("empty /history text")
        if n >= READ_WARMUP:
            times.append(elapsed)
            sizes.append(len(entries))
    return times, sizes


class _Message:
    """The update's message: `reply_text` keeps what the handler answered."""

    def __init__(self) -> None:
        self.replies: list[str] = []

    async def reply_text(self, text: str, **_: object) -> None:
        self.replies.append(text)


def _runtime(
    content: Content,
    url: str,
    sessions: async_sessionmaker[AsyncSession],
    holder: KeyringHolder,
    clock: Clock,
) -> Runtime:
    return Runtime(
        settings=Settings(_env_file=None, database_url=url),
        content=content,
        engine=sessions.kw["bind"],
        sessions=sessions,
        delivery=DeliveryEngine(  # never used: the handler only reads and answers
            sessions=sessions,
            content=content,
            sender=Sender(Bot(TEST_TOKEN), RateBudget(1.0)),
            clock=clock,
            keys=holder,
        ),
        zones=ZoneDirectory.load(ROOT / "content" / "places.yml"),
        clock=clock,
        keys=holder,
        checkin_writer=CheckinWriter(sessions, holder.get),
    )


async def _history_handler(
    runtime: Runtime, people: Sequence[int], now: datetime
) -> tuple[list[float], int]:
    """ms per call of the real /history handler (Telegram stubbed out), checking that each
    reply equals `history_text` for the same user: the measured reproduction has not drifted."""
    context = cast(
        Context, SimpleNamespace(application=SimpleNamespace(bot_data={RUNTIME_KEY: runtime}))
    )
    keyring = runtime.keys.get()
    times: list[float] = []
    for n, user_id in enumerate(people):
        message = _Message()
        update = SimpleNamespace(
            effective_user=SimpleNamespace(id=user_id, language_code="en"),
            effective_chat=SimpleNamespace(id=user_id),
            effective_message=message,
        )
        t0 = time.perf_counter()
        await checkin_handler.history(cast(Update, update), context)
        elapsed = (time.perf_counter() - t0) * 1000
        _, entries = await _entries(
            runtime.sessions, keyring, user_id, now, checkin_handler.HISTORY_DAYS
        )
        if message.replies != [history_text(runtime.content, entries)]:
            raise BenchmarkError(
                "history_text no longer matches what bot.handlers.checkin.history answers; "
                "update it to the handler's formatting"
            )
        if n >= READ_WARMUP // 2:
            times.append(elapsed)
    return times, len(people)


def _render(points: Sequence[DayPoint], labels: ChartLabels, end: date) -> tuple[bytes, float]:
    """`render_trends` as the handler calls it, and the CPU ms it took in its thread (less
    sensitive than wall time to what else runs on a shared machine)."""
    started = time.thread_time()
    png = render_trends(points, labels, days=checkin_handler.TRENDS_DAYS, end=end)
    return png, (time.thread_time() - started) * 1000


async def _trends(
    sessions: async_sessionmaker[AsyncSession],
    keyring: Keyring,
    content: Content,
    people: Sequence[int],
    now: datetime,
) -> dict[str, Any]:
    """ms of the /trends data (read, decrypt, daily means, caption) and of `render_trends`,
    apart; the first render (imports matplotlib, loads fonts) is reported on its own."""
    data_ms: list[float] = []
    render_ms: list[float] = []
    render_cpu_ms: list[float] = []
    days_shown: list[int] = []
    png_bytes: list[int] = []
    first_render_ms = 0.0
    for n, user_id in enumerate([people[0], *people]):
        t0 = time.perf_counter()
        today, entries = await _entries(
            sessions, keyring, user_id, now, checkin_handler.TRENDS_DAYS
        )
        points = checkins.daily_points(entries)
        caption = checkin_handler.trends_caption(content, points)
        t1 = time.perf_counter()
        png, cpu_ms = await asyncio.to_thread(_render, points, chart_labels(content), today)
        t2 = time.perf_counter()
        if not png.startswith(b"\x89PNG") or not caption:
            raise BenchmarkError("render_trends gave no PNG")
        if n == 0:
            first_render_ms = (t2 - t1) * 1000
            continue
        data_ms.append((t1 - t0) * 1000)
        render_ms.append((t2 - t1) * 1000)
        render_cpu_ms.append(cpu_ms)
        days_shown.append(len(points))
        png_bytes.append(len(png))
    return {
        "data_ms": data_ms,
        "render_ms": render_ms,
        "render_cpu_ms": render_cpu_ms,
        "first_render_ms": round(first_render_ms, 1),
        "days_with_checkins_mean": round(sum(days_shown) / len(days_shown), 1),
        "png_bytes_mean": round(sum(png_bytes) / len(png_bytes)),
    }


# --------------------------------------------------------------------------------------------
# Writes
# --------------------------------------------------------------------------------------------


async def _writes(
    sessions: async_sessionmaker[AsyncSession],
    keyring: Keyring,
    writers: Sequence[int],
    seconds: float,
    anchor: datetime,
) -> dict[str, Any]:
    """Each writer saves check-ins back to back for a warm-up and then `seconds`, through the
    bot's CheckinWriter (saves arriving together share a transaction); a write is timed from
    the call to the moment its commit is done."""
    warmup = min(1.0, seconds / 5)
    origin = time.perf_counter()
    window_start = origin + warmup
    window_end = window_start + seconds
    done: list[tuple[float, float]] = []  # (started, finished) of every successful write
    errors: list[str] = []
    cpu_started = time.process_time()

    async def write_loop(user_id: int) -> None:
        rng = random.Random(user_id)
        while (started := time.perf_counter()) < window_end:
            scores = Scores(
                pain=rng.randint(0, 10),
                stress=rng.randint(0, 10),
                mood=rng.randint(1, 5),
                sleep=rng.randint(1, 5),
                note=rng.choice(NOTES) if rng.random() < 0.08 else None,
            )
            now = anchor + timedelta(seconds=started - origin)
            try:
                await writer.save(user_id, scores, now)
            except Exception as exc:  # counted and reported: a locked database is a result
                errors.append(f"{type(exc).__name__}: {exc}"[:300])
                if len(errors) > MAX_WRITE_ERRORS:
                    raise BenchmarkError(
                        f"{len(errors)} writes failed; first: {errors[0]}"
                    ) from exc
                continue
            done.append((started, time.perf_counter()))

    writer = CheckinWriter(sessions, lambda: keyring)
    writer.start()
    await asyncio.gather(*(write_loop(user_id) for user_id in writers))
    finished_at = time.perf_counter()
    await writer.stop()
    cpu_seconds = time.process_time() - cpu_started
    measured = [(s, f) for s, f in done if s >= window_start]
    completed = sum(1 for _, f in done if window_start <= f <= window_end)
    latencies = [(f - s) * 1000 for s, f in measured]
    if not latencies:
        raise BenchmarkError("no write completed in the measured window")
    return {
        "rate": completed / seconds,
        "latencies_ms": latencies,
        "writes_total": len(done),
        "cpu_ms_per_write": cpu_seconds * 1000 / max(len(done), 1),
        "cpu_cores_used": round(cpu_seconds / (finished_at - origin), 2),
        "writes_in_window": completed,
        "errors": errors,
        "warmup_seconds": warmup,
        "overrun_seconds": round(finished_at - window_end, 3),
    }


# --------------------------------------------------------------------------------------------
# The scenario
# --------------------------------------------------------------------------------------------


def _query_plan(path: Path, user_id: int, since: date, sql: str) -> list[str]:
    with contextlib.closing(sqlite3.connect(path)) as connection:
        rows = connection.execute(
            "EXPLAIN QUERY PLAN " + sql, (user_id, since.isoformat())
        ).fetchall()
    return [str(row[-1]) for row in rows]


async def _entries_sql(
    sessions: async_sessionmaker[AsyncSession], keyring: Keyring, user_id: int, since: date
) -> str:
    """The SQL `entries_since` sends, as the engine sent it."""
    engine = sessions.kw["bind"]
    sent: list[str] = []

    def capture(*args: Any) -> None:
        sent.append(args[2])

    event.listen(engine.sync_engine, "before_cursor_execute", capture)
    try:
        async with sessions() as session:
            await checkins.entries_since(session, keyring, user_id, since)
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", capture)
    return " ".join(sent[-1].split())


def _distribution(values: Sequence[float]) -> dict[str, float]:
    return {
        "n": len(values),
        "p50": round(median(values), 3),
        "p90": round(percentile(values, 90), 3),
        "p99": round(percentile(values, 99), 3),
        "max": round(max(values), 3),
    }


async def run(
    content: Content, folder: Path, options: CheckinOptions
) -> tuple[list[Measure], dict[str, Any]]:
    if options.users < options.writers:
        raise BenchmarkError(f"{options.users} users cannot make {options.writers} writers")
    dataset = await prepare(folder, options.users, options.checkins, options.cache)
    gc.collect()
    url = sqlite_url(dataset.path)
    engine = create_engine(url)
    sessions = create_sessionmaker(engine)
    holder = dataset.keyring()
    keyring = holder.get()
    now = dataset.anchor
    rng = random.Random(SEED + 1)
    try:
        async with sessions() as session:
            grouped = await session.execute(
                select(CheckIn.user_id, func.count()).group_by(CheckIn.user_id)
            )
            counts: dict[int, int] = dict(grouped.tuples().all())
        if sum(counts.values()) != options.checkins:
            raise BenchmarkError(f"{sum(counts.values()):,} check-ins, not {options.checkins:,}")
        everyone = sorted(counts)
        typical = [u for u in everyone if 90 <= counts[u] <= 110]
        if len(typical) < options.writers:
            typical = sorted(everyone, key=lambda u: abs(counts[u] - 100))[: options.writers]
        writers = rng.sample(typical, options.writers)
        busy = set(writers)
        readers = [u for u in everyone if u not in busy]

        since = now.date() - timedelta(days=checkin_handler.HISTORY_DAYS - 1)
        entries_sql = await _entries_sql(sessions, keyring, readers[0], since)
        plan = _query_plan(dataset.path, readers[0], since, entries_sql)

        log(f"checkins: /history data x{options.history_runs} for random users")
        history_ms, history_sizes = await _history(
            sessions,
            keyring,
            content,
            rng.choices(readers, k=options.history_runs + READ_WARMUP),
            now,
        )
        handler_runs = max(options.history_runs // HANDLER_SHARE, 10)
        log(f"checkins: /history handler x{handler_runs}, Telegram stubbed")
        runtime = _runtime(content, url, sessions, holder, FixedClock(now))
        handler_ms, checked = await _history_handler(
            runtime, rng.choices(readers, k=handler_runs + READ_WARMUP // 2), now
        )

        log(f"checkins: /trends x{options.trends_runs} (read, then render_trends)")
        trends = await _trends(
            sessions, keyring, content, rng.sample(readers, options.trends_runs), now
        )

        async with sessions() as session:
            before = await session.scalar(select(func.count()).where(CheckIn.user_id.in_(writers)))
        log(
            f"checkins: {options.writers} users writing for {options.write_seconds:g} s "
            f"(load average {os.getloadavg()[0]:.2f})"
        )
        load_before = os.getloadavg()
        writes = await _writes(sessions, keyring, writers, options.write_seconds, now)
        load_after = os.getloadavg()
        async with sessions() as session:
            after = await session.scalar(select(func.count()).where(CheckIn.user_id.in_(writers)))
        if (after or 0) - (before or 0) != writes["writes_total"]:
            raise BenchmarkError(
                f"{writes['writes_total']} writes reported, {(after or 0) - (before or 0)} stored"
            )
        pool = engine.pool.status()
    finally:
        await engine.dispose()

    write_ms: list[float] = writes.pop("latencies_ms")
    data_ms: list[float] = trends.pop("data_ms")
    render_ms: list[float] = trends.pop("render_ms")
    render_cpu_ms: list[float] = trends.pop("render_cpu_ms")
    errors: list[str] = writes.pop("errors")
    size = f"{options.users:,} users, {options.checkins:,} check-ins"
    who = f"{options.writers} users"
    build_label = (
        f"database build ({size}; cached, built {dataset.built_at[:10]})"
        if dataset.cached
        else f"database build ({size})"
    )
    measures = [
        Measure("checkins.build_seconds", build_label, dataset.build_seconds, "s"),
        Measure(
            "checkins.write_rate",
            f"check-in writes, {who} at once",
            writes["rate"],
            "writes/s",
            f">= {WRITE_RATE_TARGET:,.0f} writes/s",
            writes["rate"] >= WRITE_RATE_TARGET,
        ),
        Measure("checkins.write_p50_ms", f"check-in write p50 ({who})", median(write_ms), "ms"),
        Measure(
            "checkins.write_p99_ms",
            f"check-in write p99 ({who})",
            percentile(write_ms, 99),
            "ms",
            f"<= {WRITE_P99_TARGET_MS:g} ms",
            percentile(write_ms, 99) <= WRITE_P99_TARGET_MS,
        ),
        Measure(
            "checkins.write_cpu_ms",
            "check-in write CPU time (all threads; 1,000/s needs <= 1 ms)",
            writes["cpu_ms_per_write"],
            "ms",
        ),
        Measure(
            "checkins.write_errors",
            "check-in writes failed",
            len(errors),
            "count",
            "0",
            not errors,
            zero_ok=True,
        ),
        Measure(
            "checkins.history_p50_ms",
            "/history data p50 (read+decrypt+table)",
            median(history_ms),
            "ms",
        ),
        Measure(
            "checkins.history_p99_ms",
            "/history data p99 (read+decrypt+table)",
            percentile(history_ms, 99),
            "ms",
            f"<= {HISTORY_P99_TARGET_MS:g} ms",
            percentile(history_ms, 99) <= HISTORY_P99_TARGET_MS,
        ),
        Measure(
            "checkins.history_handler_p99_ms",
            "/history handler p99 (+ record_visit; Telegram stubbed)",
            percentile(handler_ms, 99),
            "ms",
        ),
        Measure(
            "checkins.trends_data_p50_ms",
            "/trends data p50 (read+decrypt+means)",
            median(data_ms),
            "ms",
        ),
        Measure(
            "checkins.trends_render_p50_ms",
            "/trends render_trends p50 (30 days)",
            median(render_ms),
            "ms",
            f"<= {RENDER_P50_TARGET_MS:g} ms",
            median(render_ms) <= RENDER_P50_TARGET_MS,
        ),
        Measure(
            "checkins.trends_render_p99_ms",
            "/trends render_trends p99 (30 days)",
            percentile(render_ms, 99),
            "ms",
        ),
        Measure(
            "checkins.trends_render_cpu_p50_ms",
            "/trends render_trends CPU p50 (its thread)",
            median(render_cpu_ms),
            "ms",
        ),
    ]
    details: dict[str, Any] = {
        "users": options.users,
        "checkins": options.checkins,
        "days": DAYS,
        "database": {
            "build_seconds": dataset.build_seconds,
            "cached": dataset.cached,
            "built_at": dataset.built_at,
            "anchor": dataset.anchor.isoformat(),
            "file_mb": round(dataset.path.stat().st_size / 1e6, 1),
            "checkins_per_user": {
                "min": min(counts.values()),
                "p50": median(list(counts.values())),
                "max": max(counts.values()),
            },
        },
        "history": {
            "days": checkin_handler.HISTORY_DAYS,
            "warmup_runs": READ_WARMUP,
            "data_ms": _distribution(history_ms),
            "entries_read_mean": round(sum(history_sizes) / len(history_sizes), 1),
            "entries_read_max": max(history_sizes),
            "handler_ms": _distribution(handler_ms),
            "handler_replies_checked": checked,
            "entries_since_sql": entries_sql,
            "entries_since_plan": plan,
        },
        "trends": {
            "days": checkin_handler.TRENDS_DAYS,
            "data_ms": _distribution(data_ms),
            "render_ms": _distribution(render_ms),
            "render_cpu_ms": _distribution(render_cpu_ms),
            **trends,
        },
        "writes": {
            "writers": options.writers,
            "writer_checkins_before_mean": round(sum(counts[u] for u in writers) / len(writers), 1),
            "seconds": options.write_seconds,
            "latency_ms": _distribution(write_ms),
            "error_samples": errors[:5],
            "pool_status": pool,
            "load_average_before": list(load_before),
            "load_average_after": list(load_after),
            **writes,
        },
    }
    return measures, details
