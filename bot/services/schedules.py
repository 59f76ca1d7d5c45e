"""Local wall-clock times to UTC instants, through daylight-saving changes.

Rules: a local time that does not exist on a day (the spring-forward gap) moves forward to the
first valid minute after it; an ambiguous one (the fall-back hour) uses its first occurrence; a
day on which the time cannot happen at all (a zone skipping a whole date) is skipped. Every
occurrence belongs to exactly one local date.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

MAX_DAYS_AHEAD = 15


@lru_cache(maxsize=1024)
def zone(key: str) -> ZoneInfo:
    """A ZoneInfo by key, cached (zoneinfo's own cache keeps only the last eight)."""
    return ZoneInfo(key)


@dataclass(frozen=True, slots=True)
class Occurrence:
    """One scheduled moment: when it happens (UTC) and the local date it belongs to."""

    at: datetime
    local_date: date


def _wall(instant: datetime, zone: ZoneInfo) -> datetime:
    return instant.astimezone(zone).replace(tzinfo=None, fold=0)


def resolve(day: date, at: time, zone: ZoneInfo) -> datetime | None:
    """The UTC instant of local `at` on `day`, or None if that day never reaches it."""
    wanted = datetime.combine(day, at.replace(tzinfo=None, second=0, microsecond=0))
    first = wanted.replace(tzinfo=zone, fold=0).astimezone(UTC)
    if _wall(first, zone) == wanted:
        return first
    # In a gap: fold=0 and fold=1 land on either side of the transition. The first valid
    # minute after the requested time is the transition itself; find it by bisection.
    other = wanted.replace(tzinfo=zone, fold=1).astimezone(UTC)
    low, high = min(first, other), max(first, other)
    if _wall(low, zone) >= wanted:
        high = low
    while high - low > timedelta(minutes=1):
        middle = low + (high - low) / 2
        middle = middle.replace(second=0, microsecond=0)
        if middle <= low:
            break
        if _wall(middle, zone) >= wanted:
            high = middle
        else:
            low = middle
    resolved = high.replace(second=0, microsecond=0)
    if _wall(resolved, zone) < wanted:
        resolved += timedelta(minutes=1)
    if resolved.astimezone(zone).date() != day:
        return None
    return resolved


def next_occurrence(
    at: time, zone: ZoneInfo, after: datetime, weekday: int | None = None
) -> Occurrence:
    """The first occurrence strictly after `after` (optionally only on a weekday, Monday=0)."""
    if after.tzinfo is None:
        raise ValueError("after must be timezone-aware")
    day = after.astimezone(zone).date() - timedelta(days=1)
    for offset in range(MAX_DAYS_AHEAD):
        candidate = day + timedelta(days=offset)
        if weekday is not None and candidate.weekday() != weekday:
            continue
        instant = resolve(candidate, at, zone)
        if instant is not None and instant > after:
            return Occurrence(instant, candidate)
    raise ValueError(f"no occurrence of {at} in {zone.key} within {MAX_DAYS_AHEAD} days")
