"""One writer for all check-ins: saves that arrive together are committed together.

Each check-in alone costs a transaction (and, on SQLite, a turn at the single write lock).
People checking in at the same moment queue here instead; one task stores everything queued
in one transaction and wakes each caller with its own result. A person's check-in and the
removal of their draft stay in that one transaction.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.db.engine import unit_of_work
from bot.db.models import CheckInDraft
from bot.services import checkins
from bot.services.checkins import Cipher, Entry, Scores

logger = logging.getLogger(__name__)
MAX_BATCH = 500


@dataclass
class _Pending:
    user_id: int
    scores: Scores
    now: datetime
    done: asyncio.Future[Entry] = field(repr=False)


class CheckinWriter:
    """Queue check-ins; a single task commits them in batches."""

    def __init__(
        self, sessions: async_sessionmaker[AsyncSession], cipher: Callable[[], Cipher]
    ) -> None:
        self.sessions = sessions
        self.cipher = cipher
        self._queue: asyncio.Queue[_Pending] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="checkin-writer")

    async def stop(self) -> None:
        """Store what is queued, then stop."""
        if self._task is None:
            return
        await self._queue.join()
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None

    async def save(self, user_id: int, scores: Scores, now: datetime) -> Entry:
        """Store one check-in (and drop the person's draft); PermissionError without consent."""
        if self._task is None:
            async with unit_of_work(self.sessions) as session:
                entry = await checkins.save(session, self.cipher(), user_id, scores, now)
                await checkins.drop_draft(session, user_id)
            return entry
        done: asyncio.Future[Entry] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(_Pending(user_id, scores, now, done))
        return await done

    async def _run(self) -> None:
        while True:
            batch = [await self._queue.get()]
            while not self._queue.empty() and len(batch) < MAX_BATCH:
                batch.append(self._queue.get_nowait())
            try:
                await self._store(batch)
            except Exception as exc:
                logger.exception("could not store %d check-ins", len(batch))
                for item in batch:
                    if not item.done.done():
                        item.done.set_exception(exc)
            finally:
                for _ in batch:
                    self._queue.task_done()

    async def _store(self, batch: list[_Pending]) -> None:
        async with unit_of_work(self.sessions) as session:
            results = await checkins.save_many(
                session, self.cipher(), [(i.user_id, i.scores, i.now) for i in batch]
            )
            await session.execute(
                delete(CheckInDraft).where(CheckInDraft.user_id.in_({i.user_id for i in batch}))
            )
        for item, result in zip(batch, results, strict=True):
            if item.done.done():
                continue
            if isinstance(result, Exception):
                item.done.set_exception(result)
            else:
                item.done.set_result(result)
