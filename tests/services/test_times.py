"""Times of day as people type them, and the form the bot shows them in."""

from __future__ import annotations

from datetime import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.services.times import format_time, parse_time_of_day


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("8", time(8, 0)),
        ("08", time(8, 0)),
        ("0", time(0, 0)),
        ("23", time(23, 0)),
        ("8:30", time(8, 30)),
        ("08:30", time(8, 30)),
        ("8.30", time(8, 30)),
        ("20.30", time(20, 30)),
        ("0:00", time(0, 0)),
        ("23:59", time(23, 59)),
        ("0830", time(8, 30)),
        ("2030", time(20, 30)),
        ("0000", time(0, 0)),
        ("8am", time(8, 0)),
        ("8 am", time(8, 0)),
        ("8AM", time(8, 0)),
        ("8 a.m.", time(8, 0)),
        ("8:30pm", time(20, 30)),
        ("8.30 PM", time(20, 30)),
        ("11.59p.m.", time(23, 59)),
        ("12am", time(0, 0)),
        ("12:30 am", time(0, 30)),
        ("12pm", time(12, 0)),
        ("12:45pm", time(12, 45)),
        ("1pm", time(13, 0)),
        ("20h", time(20, 0)),
        ("20h30", time(20, 30)),
        ("7H05", time(7, 5)),
        ("noon", time(12, 0)),
        ("Noon", time(12, 0)),
        ("midnight", time(0, 0)),
        ("  7:05\n", time(7, 5)),
        ("\t21:15 ", time(21, 15)),
    ],
)
def test_accepted(text: str, expected: time) -> None:
    assert parse_time_of_day(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        "abc",
        "25:00",
        "24:00",
        "8:75",
        "8:60",
        "8:3",
        "8:300",
        "830",  # three bare digits: 8:30 or 83:0?
        "20300",
        "13pm",
        "0am",
        "00:30am",
        "8 : 30",
        "8,30",
        "-8",
        "8h5",
        "8:30:00",
        "half past eight",
        "tomorrow at 8",
        "8" + " " * 20 + "am",
        "x" * 21,
        "٨:٣٠",  # non-ASCII digits
    ],
)
def test_refused(text: str) -> None:
    assert parse_time_of_day(text) is None


def test_the_result_is_a_naive_wall_clock_time() -> None:
    parsed = parse_time_of_day("08:30")
    assert parsed is not None
    assert parsed.tzinfo is None
    assert parsed.second == 0
    assert parsed.microsecond == 0


@pytest.mark.parametrize(
    ("at", "shown"),
    [(time(8, 30), "08:30"), (time(0, 0), "00:00"), (time(23, 59, 59), "23:59")],
)
def test_format_time(at: time, shown: str) -> None:
    assert format_time(at) == shown


@given(st.text(max_size=40))
def test_never_raises(text: str) -> None:
    parsed = parse_time_of_day(text)
    assert parsed is None or (parsed.tzinfo is None and parsed.second == 0)


@given(st.times())
def test_hh_mm_round_trips(at: time) -> None:
    minute = time(at.hour, at.minute)
    assert parse_time_of_day(at.strftime("%H:%M")) == minute
    assert parse_time_of_day(format_time(at)) == minute


@given(st.times(), st.sampled_from(["%I:%M%p", "%I:%M %p", "%I.%M %p"]))
def test_twelve_hour_forms_round_trip(at: time, pattern: str) -> None:
    assert parse_time_of_day(at.strftime(pattern)) == time(at.hour, at.minute)
