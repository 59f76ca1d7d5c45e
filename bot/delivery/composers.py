"""What each schedule kind sends: the daily tip, the weekly summary, the check-in reminder.

A composer returns the message for one claimed delivery, or None when there is nothing to
send (the delivery is then recorded as skipped): no check-ins this week, or already checked in
today.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import date, timedelta

from sqlalchemy import exists, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.charts import DayPoint, render_week
from bot.content import Content
from bot.crypto import KeyringHolder
from bot.db.models import CheckIn
from bot.services import checkins
from bot.views import View, chart_labels, reminder_view, tip_view

WEEK = timedelta(days=7)


@dataclass(frozen=True, slots=True)
class Job:
    """The part of a claim a composer needs."""

    user_id: int
    local_date: date
    tip_id: str | None


def weekly_caption(content: Content, week: list[DayPoint], before: list[DayPoint]) -> str:
    """Averages, the change from the previous week, and one suggestion."""
    now, then = checkins.averages(week), checkins.averages(before)
    missing = content.text("trends.not_reported")

    def shown(value: float | None) -> str:
        return f"{value:.1f}" if value is not None else missing

    lines = [
        content.text(
            "weekly.caption",
            days=len(week),
            pain=shown(now["pain"]),
            stress=shown(now["stress"]),
            mood=shown(now["mood"]),
            sleep=shown(now["sleep"]),
        )
    ]
    changes = []
    for field in checkins.FIELDS:
        if now[field] is None or then[field] is None:
            continue
        delta = round(now[field] - then[field], 1)  # type: ignore[operator]
        name = content.text(f"checkin.field_{field}")
        if delta > 0:
            changes.append(content.text("weekly.change_up", field=name, delta=f"{delta:.1f}"))
        elif delta < 0:
            changes.append(content.text("weekly.change_down", field=name, delta=f"{-delta:.1f}"))
    if changes:
        lines.append(content.text("weekly.changes", changes=", ".join(changes)))
    elif before:
        lines.append(content.text("weekly.no_change"))
    lines.append(content.text(f"weekly.suggest_{suggestion(now, then)}"))
    return "\n\n".join(lines)


def suggestion(now: dict[str, float | None], then: dict[str, float | None]) -> str:
    """Which suggestion fits the week: stress, sleep, pain rising, or keep going."""
    if now["stress"] is not None and now["stress"] >= 6:
        return "stress"
    if now["sleep"] is not None and now["sleep"] <= 2.5:
        return "sleep"
    if now["pain"] is not None and then["pain"] is not None and now["pain"] > then["pain"]:
        return "pain"
    return "steady"


class Composers:
    """Renders the message of each schedule kind for the delivery engine."""

    def __init__(
        self,
        content: Content,
        sessions: async_sessionmaker[AsyncSession],
        keys: KeyringHolder | None,
    ) -> None:
        self.content = content
        self.sessions = sessions
        self.keys = keys
        # A tip's message is the same for everyone: render each once (content is read once at
        # start and never changes while the process runs; Telegram's objects are immutable).
        self._tip_views: dict[str, View] = {}

    async def daily_tip(self, job: Job) -> View | None:
        tip_id = job.tip_id or ""
        view = self._tip_views.get(tip_id)
        if view is None:
            tip = self.content.tips.get(tip_id)
            if tip is None:
                return None
            view = self._tip_views[tip_id] = tip_view(self.content, tip)
        return view

    async def weekly_summary(self, job: Job) -> View | None:
        if self.keys is None:
            return None
        async with self.sessions() as session:
            entries = await checkins.entries_since(
                session, self.keys.get(), job.user_id, job.local_date - 2 * WEEK + timedelta(days=1)
            )
        start = job.local_date - WEEK + timedelta(days=1)
        week = checkins.daily_points([e for e in entries if e.local_date >= start])
        before = checkins.daily_points([e for e in entries if e.local_date < start])
        if not week:
            return None
        png = await asyncio.to_thread(
            render_week, week, chart_labels(self.content, week=True), end=job.local_date
        )
        return View(weekly_caption(self.content, week, before), photo=png)

    async def checkin_reminder(self, job: Job) -> View | None:
        async with self.sessions() as session:
            done = await session.scalar(
                select(
                    exists().where(
                        CheckIn.user_id == job.user_id, CheckIn.local_date == job.local_date
                    )
                )
            )
        return None if done else reminder_view(self.content)
