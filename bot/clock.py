"""The bot's sense of "now": real time, or a moment set on purpose (tests, the offline demo)."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

from bot.db.models import utcnow


class Clock:
    """Timezone-aware current time in UTC, which can be set, moved forward or sped up.

    now() = anchor + (real time elapsed since the anchor was taken) × speed. `set`, `advance`
    and `run_at` re-anchor, so each changes only what happens from then on.
    """

    def __init__(self) -> None:
        self._real_anchor = utcnow()
        self._anchor = self._real_anchor
        self._speed = 1.0

    @property
    def speed(self) -> float:
        """How many seconds pass on this clock per real second (1 is real time)."""
        return self._speed

    def now(self) -> datetime:
        return self._anchor + (utcnow() - self._real_anchor) * self._speed

    def set(self, moment: datetime) -> None:
        """Make it `moment` now; time keeps running from there (at the current speed)."""
        if moment.tzinfo is None:
            raise ValueError("the clock only takes timezone-aware datetimes")
        self._real_anchor = utcnow()
        self._anchor = moment.astimezone(UTC)

    def advance(self, delta: timedelta) -> None:
        self._anchor += delta

    def run_at(self, speed: float) -> None:
        """From now on, run `speed` times as fast as real time (e.g. 1440: a day a minute)."""
        if not math.isfinite(speed) or speed <= 0:
            raise ValueError("the clock's speed must be a positive number")
        self.set(self.now())
        self._speed = float(speed)
