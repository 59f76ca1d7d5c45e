"""A time of day as people type it ("8", "08:30", "8.30 pm", "20h30", "noon") and back.

The result is a wall-clock time with no zone on purpose: the user's IANA zone is stored beside
it and only `schedules.resolve` turns the two into an instant, day by day, through DST changes.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import time

MAX_LENGTH = 20
NAMED: Mapping[str, time] = {"noon": time(12, 0), "midday": time(12, 0), "midnight": time(0, 0)}

# 8 · 08 · 8:30 · 8.30 · 8am · 8 am · 8:30pm · 8.30 p.m.
_CLOCK = re.compile(
    r"(?P<hour>[0-9]{1,2})(?:[:.](?P<minute>[0-9]{2}))?(?:\s*(?P<half>[ap])\.?m\.?)?",
    re.IGNORECASE,
)
# 0830 · 2030
_DIGITS = re.compile(r"(?P<hour>[0-9]{2})(?P<minute>[0-9]{2})")
# 20h · 20h30
_FRENCH = re.compile(r"(?P<hour>[0-9]{1,2})h(?P<minute>[0-9]{2})?", re.IGNORECASE)


def parse_time_of_day(text: str) -> time | None:
    """The wall-clock time `text` names (second=0, no tzinfo), or None if it is not one."""
    cleaned = text.strip()
    if not cleaned or len(cleaned) > MAX_LENGTH:
        return None
    named = NAMED.get(cleaned.casefold())
    if named is not None:
        return named
    match = _CLOCK.fullmatch(cleaned) or _DIGITS.fullmatch(cleaned) or _FRENCH.fullmatch(cleaned)
    if match is None:
        return None
    hour, minute = int(match["hour"]), int(match["minute"] or 0)
    half = match.groupdict().get("half")
    if half is not None:
        if not 1 <= hour <= 12:
            return None
        hour = hour % 12 + (12 if half.casefold() == "p" else 0)
    if hour > 23 or minute > 59:
        return None
    return time(hour, minute)


def format_time(at: time) -> str:
    """ "08:30": the 24-hour form the bot shows and parse_time_of_day reads back."""
    return f"{at.hour:02d}:{at.minute:02d}"
