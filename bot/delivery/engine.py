"""The due-scan engine.

Every tick claims due schedules in ONE short transaction: it inserts a delivery row per
(user, kind, local date) — unique, so a second claim of the same day is impossible — and
advances each schedule's `next_run_at`. The claim commits before anything is sent, so a crash
can lose in-flight messages (they are recorded as "unknown" afterwards) but never send one
twice. Then, outside that transaction, the claims are prepared (chat, and the daily tip chosen
from each person's history) and wait in a short in-memory queue that workers drain under the
broadcast rate budget; outcomes, with the tip that was sent, are written back in batches.
Keeping the tip choice out of the claim keeps the write transaction a few milliseconds long:
SQLite has one writer, and PostgreSQL holds the claimed rows' locks until it commits.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.clock import Clock
from bot.content import Content
from bot.crypto import KeyringHolder
from bot.db.models import (
    Delivery,
    DeliveryStatus,
    Schedule,
    ScheduleKind,
    User,
    Worker,
)
from bot.delivery.claims import statements_for, upsert_insert
from bot.delivery.composers import Composers, Job
from bot.delivery.sender import Sender, SendResult
from bot.metrics import DELIVERIES, DUE_BACKLOG
from bot.services import subscriptions, tip_history
from bot.services.schedules import zone as schedule_zone
from bot.services.tips import choose_tip
from bot.views import View

logger = logging.getLogger(__name__)

# Heartbeat, lease recovery and the backlog gauge: every tick would be a waste at 0.2 s ticks.
HOUSEKEEPING_INTERVAL = timedelta(seconds=10)

# Outcomes are written in the background in batches: when FLUSH_SIZE are waiting, when the
# queue runs dry, and at least every FLUSH_INTERVAL seconds. A crash loses at most these
# records; those deliveries are then recorded as unknown, never sent again.
FLUSH_SIZE = 100
FLUSH_INTERVAL = 0.5


@dataclass(frozen=True, slots=True)
class Claim:
    """A delivery that is committed as claimed and now has to be sent.

    `chat_id` and `tip_id` are filled in by `DeliveryEngine.prepare`, after the claim commits.
    """

    delivery_id: int
    user_id: int
    kind: ScheduleKind
    local_date: date
    due_at: datetime
    chat_id: int | None = None
    tip_id: str | None = None


@dataclass(slots=True)
class TickReport:
    """What one tick did, for logs, status and tests."""

    claimed: int = 0
    skipped: int = 0
    recovered: int = 0


@dataclass(slots=True)
class EngineStats:
    """Counters since start."""

    outcomes: dict[DeliveryStatus, int] = field(default_factory=lambda: defaultdict(int))
    last_tick_at: datetime | None = None


class DeliveryEngine:
    """Claims due schedules and sends them; one instance per delivery worker."""

    def __init__(
        self,
        *,
        sessions: async_sessionmaker[AsyncSession],
        content: Content,
        sender: Sender,
        batch_size: int = 500,
        catchup: timedelta = timedelta(hours=3),
        lease: timedelta = timedelta(minutes=5),
        workers: int = 8,
        clock: Clock | None = None,
        single_worker: bool = True,
        keys: KeyringHolder | None = None,
        name: str | None = None,
    ) -> None:
        self.sessions = sessions
        self.content = content
        self.sender = sender
        self.batch_size = batch_size
        self.catchup = catchup
        self.lease = lease
        self.clock = clock or Clock()
        self.single_worker = single_worker
        self.stats = EngineStats()
        self._housekept_at: datetime | None = None
        self.name = name or f"{socket.gethostname()}:{os.getpid()}"
        self._queue: asyncio.Queue[Claim] = asyncio.Queue()
        self._results: list[tuple[Claim, SendResult]] = []
        self._workers_count = workers
        self._tasks: list[asyncio.Task[None]] = []
        self._flush_lock = asyncio.Lock()
        self._flush_wanted = asyncio.Event()
        self._recorder: asyncio.Task[None] | None = None
        self._postgres = sessions.kw["bind"].dialect.name == "postgresql"
        self.statements = statements_for(sessions.kw["bind"].dialect)
        self._started = False
        self._stopping = False
        composers = Composers(content, sessions, keys)
        self._composers: dict[ScheduleKind, Callable[[Job], Awaitable[View | None]]] = {
            ScheduleKind.DAILY_TIP: composers.daily_tip,
            ScheduleKind.WEEKLY_SUMMARY: composers.weekly_summary,
            ScheduleKind.CHECKIN_REMINDER: composers.checkin_reminder,
        }

    # ------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Recover claims a previous run left open, then start the send workers."""
        if self._started:
            return
        self._started = True
        await self.recover(everything=self.single_worker)
        self._tasks = [
            asyncio.create_task(self._worker(), name=f"delivery-worker-{n}")
            for n in range(self._workers_count)
        ]
        self._recorder = asyncio.create_task(self._record(), name="delivery-outcomes")

    async def stop(self, grace: float = 5.0) -> None:
        """Stop cleanly: hand back what was claimed but not sent, let the sends under way
        finish (up to `grace` seconds), and record every outcome."""
        if not self._started:
            await self.flush()
            return
        self._stopping = True
        waiting: list[Claim] = []
        while not self._queue.empty():
            waiting.append(self._queue.get_nowait())
            self._queue.task_done()
        if waiting:
            await self.release(waiting)
        try:
            await asyncio.wait_for(self._queue.join(), timeout=grace)
        except TimeoutError:
            logger.warning("stopping with sends still under way; they are recorded as unknown")
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        if self._recorder is not None:
            # Not cancelled: a write cut off half-way could hold SQLite's lock past the end.
            self._flush_wanted.set()
            recorder, self._recorder = self._recorder, None
            await recorder
        self._started = False
        self._stopping = False
        await self.flush()

    async def release(self, claims: Sequence[Claim]) -> None:
        """Give claims back unsent: their delivery rows go and their schedules are due again,
        so this worker (after a restart) or another one sends them."""
        async with self.sessions() as session, session.begin():
            await session.execute(
                delete(Delivery).where(Delivery.id.in_([c.delivery_id for c in claims]))
            )
            for claim in claims:
                await session.execute(
                    update(Schedule)
                    .where(
                        Schedule.user_id == claim.user_id,
                        Schedule.kind == claim.kind,
                        Schedule.active.is_(True),
                        Schedule.next_run_at.is_not(None),
                    )
                    .values(next_run_at=claim.due_at)
                )
        logger.info("handed back %d claimed deliveries that were not sent", len(claims))

    @property
    def backlog(self) -> int:
        """Claimed messages waiting to be sent in this process."""
        return self._queue.qsize()

    async def idle(self) -> None:
        """Wait until every queued message is sent and recorded."""
        await self._queue.join()
        await self.flush()

    # ------------------------------------------------------------ claiming

    async def tick(self) -> TickReport:
        """Claim what is due (if the queue has room), prepare it and hand it to the workers."""
        now = self.clock.now()
        self.stats.last_tick_at = now
        report = TickReport()
        if self._stopping:
            return report
        if self._housekept_at is None or now - self._housekept_at >= HOUSEKEEPING_INTERVAL:
            report.recovered = await self.recover(everything=False)
            await self._heartbeat(now)
            DUE_BACKLOG.set(await self.due_backlog(now))
            self._housekept_at = now
        # Claim when the queue is down to half a batch, then fill it: at a high send rate
        # this claims a few large batches a second instead of a small one every tick.
        waiting = self._queue.qsize()
        if waiting > self.batch_size // 2:
            return report
        claims, skipped = await self.claim(now, self.batch_size - waiting)
        report.claimed, report.skipped = len(claims), skipped
        try:
            ready = await self.prepare(claims)
        except BaseException:
            await asyncio.shield(self.release(claims))
            raise
        for claim in ready:
            self._queue.put_nowait(claim)
        return report

    async def due_backlog(self, now: datetime) -> int:
        """Schedules due and not yet claimed by anyone."""
        async with self.sessions() as session:
            count = await session.scalar(
                select(func.count()).where(Schedule.active.is_(True), Schedule.next_run_at <= now)
            )
        return count or 0

    async def claim(self, now: datetime, limit: int) -> tuple[list[Claim], int]:
        """Claim up to `limit` due schedules in one transaction; return claims and skips.

        Many people share a zone and a time, so the writes are set-based: one INSERT … SELECT
        per local date (and lateness) and one UPDATE per distinct next run, not one row of
        parameters per person; the next run and the local date are worked out once per
        distinct schedule too.
        """
        async with self.sessions() as session, session.begin():
            connection = await session.connection()
            due = await self.statements.due(connection, now, limit)
            if not due:
                return [], 0
            new_rows: dict[tuple[date, bool], list[int]] = defaultdict(list)
            advances: dict[datetime, list[int]] = defaultdict(list)
            due_at: dict[tuple[int, ScheduleKind], datetime] = {}
            local_dates: dict[tuple[datetime, str], date] = {}
            next_runs: dict[tuple[Any, ...], datetime] = {}
            for schedule_id, user_id, kind, local_time, timezone, weekday, paused, at in due:
                local_date = local_dates.get((at, timezone))
                if local_date is None:
                    local_date = at.astimezone(schedule_zone(timezone)).date()
                    local_dates[at, timezone] = local_date
                new_rows[local_date, now - at <= self.catchup].append(schedule_id)
                due_at[user_id, kind] = at
                key = (local_time, timezone, kind, weekday, paused, max(now, at))
                next_run = next_runs.get(key)
                if next_run is None:
                    next_run = next_runs[key] = subscriptions.next_run(*key)
                advances[next_run].append(schedule_id)
            claims: list[Claim] = []
            skipped = 0
            for (local_date, fresh), schedule_ids in new_rows.items():
                inserted = await self.statements.insert(
                    connection, schedule_ids, local_date, now, fresh
                )
                if not fresh:
                    skipped += len(inserted)
                    continue
                claims += (
                    Claim(row_id, user_id, kind, local_date, due_at[user_id, kind])
                    for row_id, user_id, kind in inserted
                )
            for next_run, schedule_ids in advances.items():
                await self.statements.advance(connection, schedule_ids, next_run, now)
        return claims, skipped

    async def prepare(self, claims: Sequence[Claim]) -> list[Claim]:
        """Claims with their chat and, for daily tips, the tip chosen for that person and day.

        Claims of people who have gone since (deleted their data) are dropped.
        """
        if not claims:
            return []
        async with self.sessions() as session:
            connection = await session.connection()
            people = {
                user_id: (chat_id, focus)
                for user_id, chat_id, focus in (
                    await connection.execute(
                        select(User.id, User.chat_id, User.focus_topics).where(
                            User.id.in_({claim.user_id for claim in claims})
                        )
                    )
                ).all()
            }
            daily = [
                claim
                for claim in claims
                if claim.kind == ScheduleKind.DAILY_TIP and claim.user_id in people
            ]
            histories = (
                await tip_history.load_histories(
                    session,
                    {claim.user_id: people[claim.user_id][1] or () for claim in daily},
                    self.clock.now(),
                )
                if daily
                else {}
            )
        topics = self.content.topics
        ready: list[Claim] = []
        for claim in claims:
            person = people.get(claim.user_id)
            if person is None:
                continue
            tip_id = None
            history = histories.get(claim.user_id)
            if history is not None and claim.kind == ScheduleKind.DAILY_TIP:
                rng = tip_history.rng_for(claim.user_id, claim.local_date)
                tip = choose_tip(topics, history, rng)
                tip_id = tip.id if tip is not None else None
            ready.append(
                Claim(
                    claim.delivery_id,
                    claim.user_id,
                    claim.kind,
                    claim.local_date,
                    claim.due_at,
                    person[0],
                    tip_id,
                )
            )
        if len(ready) < len(claims):
            logger.info("%d claims belong to people who have gone", len(claims) - len(ready))
        return ready

    async def _heartbeat(self, now: datetime) -> None:
        """Record that this worker is alive (an upsert: engines may share a name in tests)."""
        dialect_insert = upsert_insert(self._postgres)
        statement = dialect_insert(Worker).values(
            name=self.name, role="delivery", started_at=now, last_tick_at=now
        )
        async with self.sessions() as session, session.begin():
            await session.execute(
                statement.on_conflict_do_update(
                    index_elements=[Worker.name], set_={"last_tick_at": now}
                )
            )

    async def recover(self, *, everything: bool) -> int:
        """Record as unknown the claims whose sender died (all of them when single worker)."""
        cutoff = self.clock.now() if everything else self.clock.now() - self.lease
        async with self.sessions() as session, session.begin():
            result = await session.execute(
                update(Delivery)
                .where(Delivery.status == DeliveryStatus.CLAIMED, Delivery.claimed_at < cutoff)
                .values(status=DeliveryStatus.UNKNOWN, finished_at=self.clock.now(), error="lost")
                .returning(Delivery.id)
            )
            recovered = len(result.all())
        if recovered:
            logger.warning("recorded %d interrupted deliveries as unknown", recovered)
        return recovered

    # ------------------------------------------------------------ sending

    async def _worker(self) -> None:
        while True:
            claim = await self._queue.get()
            try:
                result = await self._deliver(claim)
                self._results.append((claim, result))
                if len(self._results) >= FLUSH_SIZE or self._queue.empty():
                    self._flush_wanted.set()
            except Exception:
                logger.exception("delivery %d failed unexpectedly", claim.delivery_id)
            finally:
                self._queue.task_done()

    async def _record(self) -> None:
        """Write outcomes in the background: when a batch is full, when the queue runs dry,
        and at least every FLUSH_INTERVAL seconds. Senders never wait for the database."""
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._flush_wanted.wait(), FLUSH_INTERVAL)
            self._flush_wanted.clear()
            try:
                await self.flush()
            except Exception:
                logger.exception("recording delivery outcomes failed; trying again")
            if self._recorder is None:  # stopping
                return

    async def _deliver(self, claim: Claim) -> SendResult:
        compose = self._composers.get(claim.kind)
        job = Job(claim.user_id, claim.local_date, claim.tip_id)
        view = await compose(job) if compose else None
        if view is None:
            return SendResult(DeliveryStatus.SKIPPED, error="nothing to send")
        if claim.chat_id is None:
            raise ValueError(f"delivery {claim.delivery_id} was not prepared")
        return await self.sender.send(claim.chat_id, view)

    async def flush(self) -> None:
        """Write the outcomes gathered so far in one transaction (kept for the next try if
        the transaction fails)."""
        async with self._flush_lock:
            results, self._results = self._results, []
            if not results:
                return
            try:
                await self._write_outcomes(results)
            except BaseException:
                self._results[:0] = results
                raise
            for _, result in results:
                self.stats.outcomes[result.status] += 1
                DELIVERIES.labels(result.status.value).inc()

    async def _write_outcomes(self, results: list[tuple[Claim, SendResult]]) -> None:
        """Each outcome with its tip, a tip view per tip sent, and blocked people stopped."""
        now = self.clock.now()
        tips = self.content.tips
        outcomes = [
            (claim.delivery_id, result.status, result.message_id, result.error, claim.tip_id)
            for claim, result in results
        ]
        shown = [
            (claim.user_id, tip.id, tip.topic_id)
            for claim, result in results
            if result.status == DeliveryStatus.SENT
            and (tip := tips.get(claim.tip_id or "")) is not None
        ]
        async with self.sessions() as session, session.begin():
            connection = await session.connection()
            await self.statements.finish(connection, outcomes, now)
            await self.statements.shown(connection, shown, now)
            for claim, result in results:
                if result.status == DeliveryStatus.BLOCKED:
                    await session.execute(
                        update(User)
                        .where(User.id == claim.user_id)
                        .values(is_active=False, blocked_at=now)
                    )
                    await subscriptions.stop_all(session, claim.user_id)
