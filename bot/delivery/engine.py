"""The due-scan engine.

Every tick claims due schedules in ONE transaction: it inserts a delivery row per
(user, kind, local date) — unique, so a second claim of the same day is impossible — and
advances each schedule's `next_run_at`. The claim commits before anything is sent, so a crash
can lose in-flight messages (they are recorded as "unknown" afterwards) but never send one
twice. Claimed messages wait in a short in-memory queue that workers drain under the
broadcast rate budget; outcomes are written back in batches.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.clock import Clock
from bot.content import Content
from bot.crypto import KeyringHolder
from bot.db.models import (
    Delivery,
    DeliveryStatus,
    Schedule,
    ScheduleKind,
    TipView,
    User,
    Worker,
)
from bot.delivery.composers import Composers, Job
from bot.delivery.sender import Sender, SendResult
from bot.metrics import DELIVERIES, DUE_BACKLOG
from bot.services import subscriptions, tip_history
from bot.services.schedules import zone as schedule_zone
from bot.services.tips import choose_tip
from bot.views import View

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Claim:
    """A delivery that is committed as claimed and now has to be sent."""

    delivery_id: int
    user_id: int
    chat_id: int
    kind: ScheduleKind
    local_date: date
    tip_id: str | None
    due_at: datetime


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


@dataclass(frozen=True, slots=True)
class _Due:
    schedule_id: int
    user_id: int
    chat_id: int
    kind: ScheduleKind
    local_time: time
    timezone: str
    weekday: int | None
    paused_until: datetime | None
    next_run_at: datetime
    focus_topics: tuple[str, ...]
    snoozes: int


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
        self.name = name or f"{socket.gethostname()}:{os.getpid()}"
        self._queue: asyncio.Queue[Claim] = asyncio.Queue()
        self._results: list[tuple[Claim, SendResult]] = []
        self._workers_count = workers
        self._tasks: list[asyncio.Task[None]] = []
        self._flush_lock = asyncio.Lock()
        self._postgres = sessions.kw["bind"].dialect.name == "postgresql"
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
        """Claim what is due (if the queue has room) and hand it to the workers."""
        now = self.clock.now()
        self.stats.last_tick_at = now
        report = TickReport()
        if self._stopping:
            return report
        report.recovered = await self.recover(everything=False)
        await self._heartbeat(now)
        room = self.batch_size - self._queue.qsize()
        if room <= 0:
            return report
        claims, skipped = await self.claim(now, room)
        report.claimed, report.skipped = len(claims), skipped
        for claim in claims:
            self._queue.put_nowait(claim)
        DUE_BACKLOG.set(await self.due_backlog(now))
        return report

    async def due_backlog(self, now: datetime) -> int:
        """Schedules due and not yet claimed by anyone."""
        async with self.sessions() as session:
            count = await session.scalar(
                select(func.count()).where(Schedule.active.is_(True), Schedule.next_run_at <= now)
            )
        return count or 0

    async def claim(self, now: datetime, limit: int) -> tuple[list[Claim], int]:
        """Claim up to `limit` due schedules in one transaction; return claims and skips."""
        async with self.sessions() as session, session.begin():
            due = await self._select_due(session, now, limit)
            if not due:
                return [], 0
            tips = await self._choose_tips(session, [d for d in due if self._fresh(d, now)])
            rows: list[dict[str, Any]] = []
            advances: list[dict[str, Any]] = []
            for item in due:
                zone = schedule_zone(item.timezone)
                fresh = self._fresh(item, now)
                rows.append(
                    {
                        "user_id": item.user_id,
                        "kind": item.kind,
                        "local_date": item.next_run_at.astimezone(zone).date(),
                        "sequence": item.snoozes,
                        "due_at": item.next_run_at,
                        "claimed_at": now,
                        "status": DeliveryStatus.CLAIMED if fresh else DeliveryStatus.SKIPPED,
                        "finished_at": None if fresh else now,
                        "error": None if fresh else "late after downtime",
                        "tip_id": tips.get(item.user_id) if fresh else None,
                    }
                )
                advances.append(
                    {
                        "id": item.schedule_id,
                        "snoozes": 0,
                        "next_run_at": subscriptions.next_run(
                            item.local_time,
                            item.timezone,
                            item.kind,
                            item.weekday,
                            item.paused_until,
                            max(now, item.next_run_at),
                        ),
                    }
                )
            inserted = await self._insert_deliveries(session, rows)
            await session.execute(update(Schedule), advances)
        chats = {item.user_id: item.chat_id for item in due}
        due_at = {(item.user_id, item.kind): item.next_run_at for item in due}
        claims = [
            Claim(row_id, user_id, chats[user_id], kind, local_date, tip_id, due_at[user_id, kind])
            for row_id, user_id, kind, local_date, status, tip_id in inserted
            if status == DeliveryStatus.CLAIMED
        ]
        skipped = sum(1 for row in inserted if row[4] == DeliveryStatus.SKIPPED)
        return claims, skipped

    def _fresh(self, item: _Due, now: datetime) -> bool:
        return now - item.next_run_at <= self.catchup

    async def _select_due(self, session: AsyncSession, now: datetime, limit: int) -> list[_Due]:
        query = (
            select(
                Schedule.id,
                Schedule.user_id,
                User.chat_id,
                Schedule.kind,
                Schedule.local_time,
                Schedule.timezone,
                Schedule.weekday,
                Schedule.paused_until,
                Schedule.next_run_at,
                User.focus_topics,
                Schedule.snoozes,
            )
            .join(User, User.id == Schedule.user_id)
            .where(Schedule.active.is_(True), Schedule.next_run_at <= now)
            .order_by(Schedule.next_run_at)
            .limit(limit)
        )
        if self._postgres:
            query = query.with_for_update(of=Schedule, skip_locked=True)
        result = await session.execute(query)
        return [
            _Due(
                schedule_id=row[0],
                user_id=row[1],
                chat_id=row[2],
                kind=row[3],
                local_time=row[4],
                timezone=row[5],
                weekday=row[6],
                paused_until=row[7],
                next_run_at=row[8] or now,
                focus_topics=tuple(row[9] or ()),
                snoozes=row[10] or 0,
            )
            for row in result
        ]

    async def _insert_deliveries(
        self, session: AsyncSession, rows: Sequence[dict[str, Any]]
    ) -> list[tuple[int, int, ScheduleKind, date, DeliveryStatus, str | None]]:
        dialect_insert = pg_insert if self._postgres else sqlite_insert
        statement = (
            dialect_insert(Delivery)
            .on_conflict_do_nothing(index_elements=["user_id", "kind", "local_date", "sequence"])
            .returning(
                Delivery.id,
                Delivery.user_id,
                Delivery.kind,
                Delivery.local_date,
                Delivery.status,
                Delivery.tip_id,
            )
        )
        result = await session.execute(statement, list(rows))
        return [tuple(row) for row in result]  # type: ignore[misc]

    async def _choose_tips(self, session: AsyncSession, due: Sequence[_Due]) -> dict[int, str]:
        """Pick each user's daily tip from their history, in bulk."""
        daily = [d for d in due if d.kind == ScheduleKind.DAILY_TIP]
        if not daily:
            return {}
        histories = await tip_history.load_histories(
            session, {d.user_id: d.focus_topics for d in daily}, self.clock.now()
        )
        chosen: dict[int, str] = {}
        for item in daily:
            local_date = item.next_run_at.astimezone(schedule_zone(item.timezone)).date()
            rng = tip_history.rng_for(item.user_id, local_date)
            tip = choose_tip(self.content.topics, histories[item.user_id], rng)
            if tip is not None:
                chosen[item.user_id] = tip.id
        return chosen

    async def _heartbeat(self, now: datetime) -> None:
        """Record that this worker is alive (an upsert: engines may share a name in tests)."""
        dialect_insert = pg_insert if self._postgres else sqlite_insert
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
                if len(self._results) >= 50 or self._queue.empty():
                    await self.flush()
            except Exception:
                logger.exception("delivery %d failed unexpectedly", claim.delivery_id)
            finally:
                self._queue.task_done()

    async def _deliver(self, claim: Claim) -> SendResult:
        compose = self._composers.get(claim.kind)
        job = Job(claim.user_id, claim.local_date, claim.tip_id)
        view = await compose(job) if compose else None
        if view is None:
            return SendResult(DeliveryStatus.SKIPPED, error="nothing to send")
        return await self.sender.send(claim.chat_id, view)

    async def flush(self) -> None:
        """Write the outcomes gathered so far in one transaction."""
        async with self._flush_lock:
            results, self._results = self._results, []
            if not results:
                return
            now = self.clock.now()
            async with self.sessions() as session, session.begin():
                await session.execute(
                    update(Delivery),
                    [
                        {
                            "id": claim.delivery_id,
                            "status": result.status,
                            "finished_at": now,
                            "telegram_message_id": result.message_id,
                            "error": result.error,
                        }
                        for claim, result in results
                    ],
                )
                views = [
                    {
                        "user_id": claim.user_id,
                        "tip_id": claim.tip_id,
                        "topic_id": tip.topic_id,
                        "shown_at": now,
                    }
                    for claim, result in results
                    if result.status == DeliveryStatus.SENT
                    and (tip := self.content.tips.get(claim.tip_id or "")) is not None
                ]
                if views:
                    await session.execute(insert(TipView), views)
                for claim, result in results:
                    if result.status == DeliveryStatus.BLOCKED:
                        await session.execute(
                            update(User)
                            .where(User.id == claim.user_id)
                            .values(is_active=False, blocked_at=now)
                        )
                        await subscriptions.stop_all(session, claim.user_id)
            for _, result in results:
                self.stats.outcomes[result.status] += 1
                DELIVERIES.labels(result.status.value).inc()
