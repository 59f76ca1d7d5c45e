"""The bot's sense of "now": real time, or a moment set on purpose (tests, the offline demo)."""

from __future__ import annotations

from datetime import datetime, timedelta

from bot.db.models import utcnow


class Clock:
    """Timezone-aware current time in UTC, which can be set or moved forward."""

    def __init__(self) -> None:
        self._offset = timedelta(0)

    def now(self) -> datetime:
        return utcnow() + self._offset

    def set(self, moment: datetime) -> None:
        """Make it `moment` now; time keeps running from there."""
        if moment.tzinfo is None:
            raise ValueError("the clock only takes timezone-aware datetimes")
        self._offset = moment - utcnow()

    def advance(self, delta: timedelta) -> None:
        self._offset += delta
