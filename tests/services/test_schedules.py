"""Local times to UTC through daylight-saving changes, in every zone."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, available_timezones

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.services.schedules import next_occurrence, resolve

ZONES = sorted(available_timezones())
BERLIN = ZoneInfo("Europe/Berlin")


def test_an_ordinary_day() -> None:
    assert resolve(date(2026, 6, 1), time(8, 30), BERLIN) == datetime(2026, 6, 1, 6, 30, tzinfo=UTC)


def test_spring_forward_gap_moves_to_the_first_valid_minute() -> None:
    # Berlin skips 02:00-03:00 on 29 March 2026.
    resolved = resolve(date(2026, 3, 29), time(2, 30), BERLIN)
    assert resolved == datetime(2026, 3, 29, 1, 0, tzinfo=UTC)
    assert resolved is not None
    assert resolved.astimezone(BERLIN).time() == time(3, 0)


def test_fall_back_ambiguity_uses_the_first_occurrence() -> None:
    # Berlin repeats 02:00-03:00 on 25 October 2026; the first 02:30 is still summer time.
    assert resolve(date(2026, 10, 25), time(2, 30), BERLIN) == datetime(
        2026, 10, 25, 0, 30, tzinfo=UTC
    )


def test_a_half_hour_gap() -> None:
    # Lord Howe Island moves 02:00 → 02:30 on the first Sunday of October.
    zone = ZoneInfo("Australia/Lord_Howe")
    resolved = resolve(date(2026, 10, 4), time(2, 10), zone)
    assert resolved is not None
    assert resolved.astimezone(zone).time() == time(2, 30)


def test_a_skipped_date_is_skipped() -> None:
    # Samoa skipped 30 December 2011 entirely.
    assert resolve(date(2011, 12, 30), time(8, 0), ZoneInfo("Pacific/Apia")) is None


def test_next_occurrence_is_strictly_after() -> None:
    now = datetime(2026, 6, 1, 6, 30, tzinfo=UTC)  # exactly 08:30 in Berlin
    occurrence = next_occurrence(time(8, 30), BERLIN, now)
    assert occurrence.local_date == date(2026, 6, 2)
    assert occurrence.at == datetime(2026, 6, 2, 6, 30, tzinfo=UTC)


def test_weekly_occurrence_lands_on_the_weekday() -> None:
    now = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)  # a Monday
    occurrence = next_occurrence(time(18, 0), BERLIN, now, weekday=6)
    assert occurrence.local_date == date(2026, 6, 7)
    assert occurrence.at.astimezone(BERLIN).time() == time(18, 0)


def test_naive_after_is_refused() -> None:
    with pytest.raises(ValueError, match="aware"):
        next_occurrence(time(8, 0), BERLIN, datetime(2026, 1, 1))


@settings(max_examples=400, deadline=None)
@given(
    zone_name=st.sampled_from(ZONES),
    start=st.datetimes(
        min_value=datetime(2025, 1, 1), max_value=datetime(2026, 12, 31), timezones=st.just(UTC)
    ),
    at=st.times().map(lambda t: t.replace(second=0, microsecond=0)),
)
def test_one_delivery_per_local_date_never_in_a_gap(
    zone_name: str, start: datetime, at: time
) -> None:
    """Walk 40 consecutive occurrences: each on its own local date, valid, and near `at`."""
    zone = ZoneInfo(zone_name)
    seen: set[date] = set()
    cursor = start
    for _ in range(40):
        occurrence = next_occurrence(at, zone, cursor)
        local = occurrence.at.astimezone(zone)
        assert occurrence.at > cursor
        assert local.date() == occurrence.local_date, "always within its own day"
        assert occurrence.local_date not in seen, "one delivery per local date"
        seen.add(occurrence.local_date)
        # A real local time: converting the wall time back gives the same instant.
        wall = local.replace(tzinfo=None)
        assert wall.replace(tzinfo=zone, fold=local.fold).astimezone(UTC) == occurrence.at
        # Either exactly the wanted time, or moved forward out of a gap by under a day.
        wanted = datetime.combine(occurrence.local_date, at)
        assert timedelta(0) <= wall - wanted < timedelta(hours=24)
        if wall != wanted:
            assert (
                wanted.replace(tzinfo=zone).astimezone(UTC).astimezone(zone).replace(tzinfo=None)
                != wanted
            ), "moved only when the wanted time does not exist"
        cursor = occurrence.at
