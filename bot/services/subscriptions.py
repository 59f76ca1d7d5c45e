"""Daily-tip subscriptions: time zone, time of day, pause and resume.

A schedule row keeps the local time and IANA zone; `next_run_at` (UTC) is derived from them and
is NULL whenever nothing should be sent (unsubscribed, or the user blocked the bot), so the
delivery engine's due query only ever sees rows that are really due.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time, timedelta

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.db.models import Schedule, ScheduleKind, User
from bot.services.schedules import next_occurrence, zone
from bot.services.zones import known_zones

DEFAULT_TIP_TIME = time(8, 0)
DEFAULT_PAUSE_DAYS = 7
MAX_PAUSE_DAYS = 90
WEEKLY = {ScheduleKind.WEEKLY_SUMMARY: 6}  # Sunday


class UnknownUser(LookupError):
    """The user has never talked to the bot."""


@dataclass(frozen=True, slots=True)
class DailySettings:
    """What /settings shows about daily tips."""

    timezone: str | None
    tip_time: time | None
    subscribed: bool
    paused_until: datetime | None
    next_run_at: datetime | None
    focus_topics: tuple[str, ...]
    weekly_summary: bool | None = None
    reminder_time: time | None = None
    country: str | None = None

    @property
    def ready(self) -> bool:
        return self.timezone is not None and self.tip_time is not None


def next_run(
    local_time: time,
    timezone: str,
    kind: ScheduleKind,
    weekday: int | None,
    paused_until: datetime | None,
    now: datetime,
) -> datetime:
    """The next firing strictly after `now` (or after the pause ends)."""
    start = paused_until if paused_until is not None and paused_until > now else now
    occurrence = next_occurrence(
        local_time, zone(timezone), start, weekday=WEEKLY.get(kind, weekday)
    )
    return occurrence.at


def compute_next_run(schedule: Schedule, now: datetime) -> datetime | None:
    """When this schedule should fire next, or None if it should not fire at all."""
    if not schedule.active:
        return None
    return next_run(
        schedule.local_time,
        schedule.timezone,
        schedule.kind,
        schedule.weekday,
        schedule.paused_until,
        now,
    )


async def _user(session: AsyncSession, user_id: int) -> User:
    user = await session.get(User, user_id)
    if user is None:
        raise UnknownUser(user_id)
    return user


async def _schedule(session: AsyncSession, user_id: int, kind: ScheduleKind) -> Schedule | None:
    return await session.scalar(
        select(Schedule).where(Schedule.user_id == user_id, Schedule.kind == kind)
    )


async def _daily(session: AsyncSession, user_id: int) -> Schedule | None:
    return await _schedule(session, user_id, ScheduleKind.DAILY_TIP)


async def load(session: AsyncSession, user_id: int) -> DailySettings:
    """The user's daily-tip settings as plain values."""
    user = await _user(session, user_id)
    daily = await _daily(session, user_id)
    reminder = await _schedule(session, user_id, ScheduleKind.CHECKIN_REMINDER)
    return DailySettings(
        timezone=user.timezone,
        tip_time=daily.local_time if daily else None,
        subscribed=bool(daily and daily.active),
        paused_until=daily.paused_until if daily else None,
        next_run_at=daily.next_run_at if daily else None,
        focus_topics=tuple(user.focus_topics or ()),
        weekly_summary=user.weekly_summary,
        reminder_time=reminder.local_time if reminder and reminder.active else None,
        country=user.country,
    )


async def _reschedule(session: AsyncSession, user: User, now: datetime) -> None:
    schedules = await session.scalars(select(Schedule).where(Schedule.user_id == user.id))
    for schedule in schedules:
        if user.timezone:
            schedule.timezone = user.timezone
        schedule.next_run_at = compute_next_run(schedule, now) if user.is_active else None
    await session.flush()


async def reschedule_all(session: AsyncSession, user_id: int, now: datetime) -> None:
    """Recompute every schedule of a user, e.g. after they come back."""
    await _reschedule(session, await _user(session, user_id), now)


async def stop_all(session: AsyncSession, user_id: int) -> None:
    """Nothing more is sent to this user until they come back."""
    await session.execute(
        update(Schedule).where(Schedule.user_id == user_id).values(next_run_at=None)
    )


async def set_timezone(
    session: AsyncSession, user_id: int, key: str, now: datetime
) -> DailySettings:
    """Store the user's zone; every schedule follows it."""
    if key not in known_zones():
        raise ValueError(f"unknown time zone {key!r}")
    user = await _user(session, user_id)
    user.timezone = key
    await _reschedule(session, user, now)
    return await load(session, user_id)


async def set_tip_time(
    session: AsyncSession, user_id: int, at: time, now: datetime
) -> DailySettings:
    """Store the daily tip's local time (creating the schedule, not yet subscribed)."""
    user = await _user(session, user_id)
    daily = await _daily(session, user_id)
    if daily is None:
        daily = Schedule(
            user_id=user_id,
            kind=ScheduleKind.DAILY_TIP,
            local_time=at,
            timezone=user.timezone or "UTC",
            active=False,
        )
        session.add(daily)
    daily.local_time = at.replace(second=0, microsecond=0, tzinfo=None)
    await _reschedule(session, user, now)
    return await load(session, user_id)


async def subscribe(session: AsyncSession, user_id: int, now: datetime) -> DailySettings:
    """Start daily tips; the zone must be set, the time defaults to 08:00."""
    user = await _user(session, user_id)
    if user.timezone is None:
        raise ValueError("set a time zone before subscribing")
    daily = await _daily(session, user_id)
    if daily is None:
        daily = Schedule(
            user_id=user_id,
            kind=ScheduleKind.DAILY_TIP,
            local_time=DEFAULT_TIP_TIME,
            timezone=user.timezone,
        )
        session.add(daily)
    daily.active = True
    daily.paused_until = None
    await _reschedule(session, user, now)
    return await load(session, user_id)


async def unsubscribe(session: AsyncSession, user_id: int) -> bool:
    """Stop daily tips; False if there was nothing to stop."""
    daily = await _daily(session, user_id)
    if daily is None or not daily.active:
        return False
    daily.active = False
    daily.paused_until = None
    daily.next_run_at = None
    await session.flush()
    return True


async def pause(session: AsyncSession, user_id: int, days: int, now: datetime) -> DailySettings:
    """No tips for `days` days (1-90); they resume by themselves."""
    if not 1 <= days <= MAX_PAUSE_DAYS:
        raise ValueError(f"pause must be 1-{MAX_PAUSE_DAYS} days")
    user = await _user(session, user_id)
    daily = await _daily(session, user_id)
    if daily is None or not daily.active:
        raise ValueError("not subscribed")
    daily.paused_until = now + timedelta(days=days)
    await _reschedule(session, user, now)
    return await load(session, user_id)


async def resume(session: AsyncSession, user_id: int, now: datetime) -> DailySettings:
    """End a pause now."""
    user = await _user(session, user_id)
    daily = await _daily(session, user_id)
    if daily is None or not daily.active:
        raise ValueError("not subscribed")
    daily.paused_until = None
    await _reschedule(session, user, now)
    return await load(session, user_id)


async def toggle_focus(session: AsyncSession, user_id: int, topic_id: str) -> tuple[str, ...]:
    """Add or remove a focus topic; return the new list."""
    user = await _user(session, user_id)
    focus = list(user.focus_topics or [])
    if topic_id in focus:
        focus.remove(topic_id)
    else:
        focus.append(topic_id)
    user.focus_topics = focus
    await session.flush()
    return tuple(focus)


WEEKLY_SUMMARY_TIME = time(18, 0)
DEFAULT_REMINDER_TIME = time(20, 0)


async def _ensure(
    session: AsyncSession, user: User, kind: ScheduleKind, at: time, weekday: int | None = None
) -> Schedule:
    schedule = await _schedule(session, user.id, kind)
    if schedule is None:
        schedule = Schedule(
            user_id=user.id,
            kind=kind,
            local_time=at,
            timezone=user.timezone or "UTC",
            weekday=weekday,
            active=True,
        )
        session.add(schedule)
    return schedule


async def start_weekly_summary(session: AsyncSession, user_id: int, now: datetime) -> None:
    """Weekly summaries on Sundays at 18:00 local time."""
    user = await _user(session, user_id)
    schedule = await _ensure(
        session,
        user,
        ScheduleKind.WEEKLY_SUMMARY,
        WEEKLY_SUMMARY_TIME,
        WEEKLY[ScheduleKind.WEEKLY_SUMMARY],
    )
    schedule.active = True
    user.weekly_summary = True
    await _reschedule(session, user, now)


async def stop_weekly_summary(session: AsyncSession, user_id: int) -> None:
    """No more weekly summaries (and none started automatically later)."""
    user = await _user(session, user_id)
    user.weekly_summary = False
    schedule = await _schedule(session, user_id, ScheduleKind.WEEKLY_SUMMARY)
    if schedule is not None:
        schedule.active = False
        schedule.next_run_at = None
    await session.flush()


async def set_reminder(
    session: AsyncSession, user_id: int, at: time | None, now: datetime
) -> DailySettings:
    """A daily check-in reminder at local `at`, or none."""
    user = await _user(session, user_id)
    if at is None:
        schedule = await _schedule(session, user_id, ScheduleKind.CHECKIN_REMINDER)
        if schedule is not None:
            schedule.active = False
            schedule.next_run_at = None
            await session.flush()
        return await load(session, user_id)
    schedule = await _ensure(session, user, ScheduleKind.CHECKIN_REMINDER, at)
    schedule.local_time = at
    schedule.active = True
    schedule.snoozes = 0
    await _reschedule(session, user, now)
    return await load(session, user_id)


async def snooze_reminder(session: AsyncSession, user_id: int, minutes: int, now: datetime) -> bool:
    """Remind again in `minutes`; False if the reminder is off."""
    schedule = await _schedule(session, user_id, ScheduleKind.CHECKIN_REMINDER)
    if schedule is None or not schedule.active:
        return False
    schedule.next_run_at = now + timedelta(minutes=minutes)
    schedule.snoozes = (schedule.snoozes or 0) + 1
    await session.flush()
    return True


async def set_country(session: AsyncSession, user_id: int, country: str | None) -> None:
    """The country whose crisis lines come first; None guesses it from the language."""
    user = await _user(session, user_id)
    user.country = country
    await session.flush()
