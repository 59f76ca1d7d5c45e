"""One send to Telegram with the delivery rules: what is retried, what is final."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import timedelta

import httpx
from telegram import Bot
from telegram.error import BadRequest, Forbidden, NetworkError, RetryAfter, TimedOut

from bot.db.models import DeliveryStatus
from bot.delivery.ratelimit import RateBudget, broadcasting
from bot.views import View

logger = logging.getLogger(__name__)

# Timeouts that happen before the request reached Telegram: safe to try again.
NOT_SENT_TIMEOUTS = (httpx.ConnectTimeout, httpx.PoolTimeout)


def _seconds(value: object) -> float:
    return value.total_seconds() if isinstance(value, timedelta) else float(value)  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class SendResult:
    status: DeliveryStatus
    message_id: int | None = None
    error: str | None = None


class Sender:
    """Sends under the broadcast budget; never resends what Telegram may already have.

    Its messages go out in the broadcast lane of the bot's `TelegramRateLimiter` (when the bot
    has one): after replies to people, within what is left of Telegram's limit."""

    def __init__(
        self, bot: Bot, budget: RateBudget, *, attempts: int = 4, backoff: float = 0.5
    ) -> None:
        self.bot = bot
        self.budget = budget
        self.attempts = attempts
        self.backoff = backoff
        self.retry_after_count = 0

    async def send(self, chat_id: int, view: View) -> SendResult:
        failures = 0
        while True:
            await self.budget.acquire()
            try:
                with broadcasting():
                    if view.photo is not None:
                        message = await self.bot.send_photo(
                            chat_id, view.photo, caption=view.text, reply_markup=view.markup
                        )
                    else:
                        message = await self.bot.send_message(
                            chat_id, view.text, reply_markup=view.markup
                        )
            except RetryAfter as exc:
                # Not sent: wait as long as Telegram asks, then try again (not a failure).
                self.retry_after_count += 1
                seconds = _seconds(exc.retry_after)
                logger.warning("Telegram asked to wait %.1f s; pausing the broadcast", seconds)
                self.budget.pause(seconds)
                continue
            except Forbidden as exc:
                return SendResult(DeliveryStatus.BLOCKED, error=str(exc)[:200])
            except BadRequest as exc:
                return SendResult(DeliveryStatus.FAILED, error=str(exc)[:200])
            except TimedOut as exc:
                if not isinstance(exc.__cause__, NOT_SENT_TIMEOUTS):
                    # The request may have reached Telegram: never send it twice.
                    return SendResult(DeliveryStatus.UNKNOWN, error="timed out")
                failures += 1
                error = "timed out before sending"
            except NetworkError as exc:
                failures += 1
                error = str(exc)[:200]
            else:
                return SendResult(DeliveryStatus.SENT, message_id=message.message_id)
            if failures >= self.attempts:
                return SendResult(DeliveryStatus.FAILED, error=error)
            await asyncio.sleep(self.backoff * 2 ** (failures - 1))
