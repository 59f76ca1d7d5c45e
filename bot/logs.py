"""Logging set-up: one format, quiet HTTP libraries, and secrets redacted."""

from __future__ import annotations

import logging

NOISY_LOGGERS = ("httpx", "httpcore", "apscheduler", "aiosqlite", "asyncio")


class RedactFilter(logging.Filter):
    """Replaces every occurrence of the given secrets in a record's message."""

    def __init__(self, secrets: list[str]) -> None:
        super().__init__()
        self._secrets = [s for s in secrets if s]

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = message
        for secret in self._secrets:
            redacted = redacted.replace(secret, "[redacted]")
        if redacted != message:
            record.msg, record.args = redacted, None
        return True


# python-telegram-bot logs every request's parameters and every response at DEBUG: that would
# put what people write (check-in notes included) into the log. It stays at INFO.
CONTENT_LOGGERS = ("telegram",)


# APScheduler warns each time a tick is skipped because the previous one still runs; with
# max_instances=1 that is the intended behaviour, not a problem.
SKIPPED_TICK_LOGGERS = ("apscheduler.scheduler", "apscheduler.executors.default")


def quiet_noisy_loggers() -> None:
    """HTTP clients at WARNING (their lines carry the token), Telegram's library at INFO."""
    for name in NOISY_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    for name in CONTENT_LOGGERS:
        logging.getLogger(name).setLevel(logging.INFO)
    for name in SKIPPED_TICK_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)


def configure_logging(level: str, secrets: list[str] | None = None) -> None:
    """Log to stderr at `level`, with HTTP clients quiet and secrets redacted."""
    logging.basicConfig(
        level=level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        force=True,
    )
    quiet_noisy_loggers()
    redact = RedactFilter(secrets or [])
    for handler in logging.getLogger().handlers:
        handler.addFilter(redact)
