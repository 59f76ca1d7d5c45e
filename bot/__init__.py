"""BackCalm: a Telegram companion for people living with stress and back pain."""

import os

# Opt in to python-telegram-bot's timedelta-valued durations (its next major version's only
# behaviour), so that e.g. RetryAfter.retry_after is a timedelta everywhere.
os.environ.setdefault("PTB_TIMEDELTA", "true")

__version__ = "0.1.0"
