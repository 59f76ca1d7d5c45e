"""Every message the bot sends stays under Telegram's flood limits; broadcasts have a budget.

Telegram counts messages where it receives them: about 30 a second across all chats, and about
one a second in one chat (a short burst is allowed). Two things decide what is sent when:

- `TelegramRateLimiter`, python-telegram-bot's rate-limiter hook, sees every message the
  process sends (replies to commands, button answers, the broadcast) and keeps them under those
  limits with `SendLedger`. Replies go first and may use the whole limit; the broadcast
  (whatever runs inside `broadcasting()`) uses what is left of it minus a small reserve, so a
  reply never queues behind the broadcast's backlog. A 429 pauses the broadcast for as long as
  Telegram asks.
- `RateBudget`, the broadcast's own average rate (DELIVERY_RATE_PER_SECOND), below Telegram's
  limit so that replies have room; it can catch up briefly after the broadcast was slowed.

A request reaches Telegram at some moment between the bot sending it and the bot reading the
answer, so the ledger counts a message from the moment it is let through until a window after
its answer. However late a request arrives (a slow network, a busy server, the bot's own event
loop busy elsewhere), it cannot land in a second that already holds the limit: the 429s this
replaces came from requests sent evenly that arrived bunched together.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import contextvars
import enum
import logging
import math
import time
from collections import deque
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from telegram.error import RetryAfter
from telegram.ext import BaseRateLimiter

logger = logging.getLogger(__name__)

TELEGRAM_GLOBAL_RATE = 30  # messages per second across all chats, Telegram's documented limit
ChatKey = int | str


class Lane(enum.Enum):
    """Who is sending: replies to people (first) or the broadcast (what is left)."""

    REPLY = "reply"
    BROADCAST = "broadcast"


_LANE: contextvars.ContextVar[Lane] = contextvars.ContextVar("backcalm_lane", default=Lane.REPLY)


@contextlib.contextmanager
def broadcasting() -> Iterator[None]:
    """Messages sent inside this block (in this task) belong to the broadcast."""
    token = _LANE.set(Lane.BROADCAST)
    try:
        yield
    finally:
        _LANE.reset(token)


def current_lane() -> Lane:
    return _LANE.get()


def counts_as_message(endpoint: str) -> bool:
    """Bot API methods that put a new message in a chat (what Telegram's limits count)."""
    return (endpoint.startswith("send") and endpoint != "sendChatAction") or endpoint in (
        "copyMessage",
        "copyMessages",
        "forwardMessage",
        "forwardMessages",
    )


def global_limit(configured: int | None, broadcast_rate: float) -> int:
    """Messages per second for the whole process; 0 means no limiter.

    Unset: Telegram's 30, or DELIVERY_RATE_PER_SECOND plus a fifth for replies when that is
    higher (an operator who budgets the broadcast above 30 has a reason: paid broadcasts, or
    a Bot API server without Telegram's limits)."""
    if configured is not None:
        return configured
    return max(TELEGRAM_GLOBAL_RATE, math.ceil(broadcast_rate * 6 / 5 - 1e-9))


def reply_reserve(limit: int) -> int:
    """Slots of the global limit the broadcast leaves free for replies: a tenth, at least 1."""
    return max(1, math.ceil(limit / 10)) if limit > 1 else 0


@dataclass(frozen=True, slots=True)
class ChatRule:
    """A token bucket per chat: `burst` messages at once, then `rate` a second."""

    burst: int
    rate: float

    @property
    def horizon(self) -> float:
        """How long an answered message can still matter to this chat's limit."""
        return (self.burst + MAX_REMEMBERED) / self.rate


MAX_REMEMBERED = 64  # answered messages remembered per chat (bursts are far smaller)
PRIVATE_CHAT = ChatRule(burst=3, rate=1.0)  # about one a second, short bursts allowed
GROUP_CHAT = ChatRule(burst=2, rate=0.3)  # at most 20 in any minute (2 + 60 x 0.3)
SWEEP_SECONDS = 10.0


def chat_key(chat_id: object) -> ChatKey | None:
    if isinstance(chat_id, bool):
        return None
    if isinstance(chat_id, int):
        return chat_id
    if isinstance(chat_id, str):
        text = chat_id.strip()
        return int(text) if text.lstrip("-").isdigit() else text
    return None


def chat_rule(chat: ChatKey) -> ChatRule:
    """Private chats have positive ids; groups and channels negative ids or @names."""
    return PRIVATE_CHAT if isinstance(chat, int) and chat > 0 else GROUP_CHAT


@dataclass(slots=True)
class Slot:
    """One message let through; it holds room until `finish` plus the window."""

    chat: ChatKey | None
    done: bool = False


@dataclass(slots=True)
class _Chat:
    in_flight: int = 0
    answered: list[float] = field(default_factory=list)  # answer times, ascending


class SendLedger:
    """What Telegram may still count against the limits at `now` (times are the caller's).

    Global: at most `limit` messages in any `window`, counting each from its start until
    `window` after its answer. Per chat: `ChatRule`'s bucket, with each message counted over
    the same [start, answer] span. Both guarantee Telegram's count wherever in that span the
    request arrived. `reserve` slots of the global limit are for replies only.
    """

    def __init__(
        self,
        limit: int,
        *,
        reserve: int = 0,
        window: float = 1.0,
        private: ChatRule = PRIVATE_CHAT,
        group: ChatRule = GROUP_CHAT,
    ) -> None:
        if limit < 1:
            raise ValueError("limit must be at least 1")
        self.limit = limit
        self.reserve = max(0, min(reserve, limit - 1))
        self.window = window
        self._private = private
        self._group = group
        self._in_flight = 0
        self._answered: deque[float] = deque()  # answer times, ascending
        self._chats: dict[ChatKey, _Chat] = {}
        self._swept_at = -math.inf

    def cap(self, lane: Lane) -> int:
        return self.limit if lane is Lane.REPLY else self.limit - self.reserve

    def held(self, now: float) -> int:
        """Messages that count against the global limit at `now`."""
        self._expire(now)
        return self._in_flight + len(self._answered)

    def global_ready_at(self, now: float, lane: Lane) -> float | None:
        """When `lane` may start a message: `now` if it may now, None once an answer comes."""
        excess = self.held(now) - self.cap(lane) + 1
        if excess <= 0:
            return now
        if excess > len(self._answered):
            return None
        return self._answered[excess - 1] + self.window

    def chat_ready_at(self, chat: ChatKey | None, now: float) -> float | None:
        """When `chat` may get a message: `now` if it may now, None once an answer comes."""
        if chat is None or (state := self._chats.get(chat)) is None:
            return now
        rule = self._rule(chat)
        if state.in_flight + 1 > rule.burst:
            return None
        self._forget(state, rule, now)
        ready = now
        # Every span [s, now] must hold at most burst + rate x (now - s) messages; a message
        # counts in it if it was answered at or after s (or is still in flight).
        for rank, answered_at in enumerate(reversed(state.answered), start=1):
            excess = state.in_flight + rank + 1 - rule.burst
            if excess > 0:
                ready = max(ready, answered_at + excess / rule.rate)
        return ready

    def start(self, chat: ChatKey | None, now: float) -> Slot:
        """Count a message that is being sent now (check the ready times first)."""
        self._in_flight += 1
        if chat is not None:
            self._chats.setdefault(chat, _Chat()).in_flight += 1
        if now - self._swept_at > SWEEP_SECONDS:
            self._sweep(now)
        return Slot(chat)

    def finish(self, slot: Slot, now: float) -> None:
        """The answer came (or the request failed) at `now`: the message counts until then
        plus the window."""
        if slot.done:
            return
        slot.done = True
        self._in_flight -= 1
        bisect.insort(self._answered, now)
        if slot.chat is not None:
            state = self._chats.setdefault(slot.chat, _Chat())
            state.in_flight = max(0, state.in_flight - 1)
            bisect.insort(state.answered, now)
            if len(state.answered) > MAX_REMEMBERED:
                del state.answered[0]

    def cancel(self, slot: Slot) -> None:
        """A slot that was let through but never used: nothing was sent."""
        if slot.done:
            return
        slot.done = True
        self._in_flight -= 1
        state = self._chats.get(slot.chat) if slot.chat is not None else None
        if state is not None:
            state.in_flight = max(0, state.in_flight - 1)
            if not state.in_flight and not state.answered:
                del self._chats[slot.chat]  # type: ignore[arg-type]

    @property
    def chats_remembered(self) -> int:
        return len(self._chats)

    def _rule(self, chat: ChatKey) -> ChatRule:
        return self._private if chat_rule(chat) is PRIVATE_CHAT else self._group

    def _expire(self, now: float) -> None:
        while self._answered and self._answered[0] + self.window <= now:
            self._answered.popleft()

    @staticmethod
    def _forget(state: _Chat, rule: ChatRule, now: float) -> None:
        answered = state.answered
        if not state.in_flight and all(
            rank <= rule.rate * (now - at) for rank, at in enumerate(reversed(answered), start=1)
        ):
            answered.clear()  # the chat's bucket is full again: its past no longer matters
            return
        cut = bisect.bisect_right(answered, now - rule.horizon)
        if cut:
            del answered[:cut]

    def _sweep(self, now: float) -> None:
        """Forget chats whose messages can no longer matter (keeps memory flat)."""
        self._swept_at = now
        for chat in list(self._chats):
            state = self._chats[chat]
            self._forget(state, self._rule(chat), now)
            if not state.in_flight and not state.answered:
                del self._chats[chat]


def _seconds(value: object) -> float:
    return value.total_seconds() if isinstance(value, timedelta) else float(value)  # type: ignore[arg-type]


@dataclass(slots=True)
class _Waiter:
    chat: ChatKey | None
    future: asyncio.Future[Slot]


class TelegramRateLimiter(BaseRateLimiter[None]):
    """python-telegram-bot's hook around every Bot API request of the Application's bot.

    Messages wait (if they must) for room under `SendLedger`; replies before the broadcast,
    each in arrival order, except that a message whose chat is full does not hold up others.
    Other requests (edits, button answers, getUpdates) pass straight through.
    """

    def __init__(
        self,
        limit: int,
        *,
        reserve: int | None = None,
        clock: Callable[[], float] = time.monotonic,
        max_reply_retry: float = 10.0,
    ) -> None:
        reserve = reply_reserve(limit) if reserve is None else reserve
        self.ledger = SendLedger(limit, reserve=reserve)
        self.max_reply_retry = max_reply_retry
        self.retry_after_count = 0
        self._clock = clock
        self._waiting: dict[Lane, list[_Waiter]] = {Lane.REPLY: [], Lane.BROADCAST: []}
        self._broadcast_paused_until = -math.inf
        self._timer: asyncio.TimerHandle | None = None

    async def initialize(self) -> None:
        """Nothing to open."""

    async def shutdown(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        for queue in self._waiting.values():
            for waiter in queue:
                waiter.future.cancel()
            queue.clear()

    def pause_broadcast(self, seconds: float) -> None:
        """No broadcast message starts for `seconds` (Telegram's retry_after); replies may."""
        self._broadcast_paused_until = max(
            self._broadcast_paused_until, self._clock() + max(0.0, seconds)
        )
        self._dispatch()

    def waiting(self, lane: Lane) -> int:
        return sum(1 for waiter in self._waiting[lane] if not waiter.future.done())

    async def process_request(
        self,
        callback: Callable[..., Coroutine[Any, Any, bool | dict[str, Any] | list[dict[str, Any]]]],
        args: Any,
        kwargs: dict[str, Any],
        endpoint: str,
        data: dict[str, Any],
        rate_limit_args: None,
    ) -> bool | dict[str, Any] | list[dict[str, Any]]:
        if not counts_as_message(endpoint):
            return await callback(*args, **kwargs)
        chat = chat_key(data.get("chat_id"))
        lane = current_lane()
        retried = False
        while True:
            slot = await self.acquire(chat, lane)
            try:
                return await callback(*args, **kwargs)
            except RetryAfter as exc:
                seconds = _seconds(exc.retry_after)
                self.retry_after_count += 1
                self.pause_broadcast(seconds)
                if lane is Lane.BROADCAST or retried or seconds > self.max_reply_retry:
                    raise  # the broadcast's sender waits and retries itself
                logger.warning("Telegram asked to wait %.1f s; the reply is sent after it", seconds)
                retried = True
            finally:
                self.release(slot)
            await asyncio.sleep(seconds)

    async def acquire(self, chat: ChatKey | None, lane: Lane = Lane.REPLY) -> Slot:
        """Wait until a message to `chat` may start; `release` the slot once answered."""
        waiter = _Waiter(chat, asyncio.get_running_loop().create_future())
        self._waiting[lane].append(waiter)
        self._dispatch()
        try:
            return await waiter.future
        except asyncio.CancelledError:
            if waiter.future.done() and not waiter.future.cancelled():
                self.ledger.cancel(waiter.future.result())
                self._dispatch()
            raise

    def release(self, slot: Slot) -> None:
        """The request of `slot` was answered (or failed) now."""
        self.ledger.finish(slot, self._clock())
        if self._waiting[Lane.REPLY] or self._waiting[Lane.BROADCAST]:
            self._dispatch()

    def _dispatch(self) -> None:
        """Let through every waiter that may start now; wake up when the next one may."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        now = self._clock()
        wake: float | None = None
        for lane in (Lane.REPLY, Lane.BROADCAST):
            queue = self._waiting[lane]
            if not queue:
                continue
            if lane is Lane.BROADCAST and now < self._broadcast_paused_until:
                wake = _earliest(wake, self._broadcast_paused_until)
                continue
            kept: list[_Waiter] = []
            full = False
            for waiter in queue:
                if waiter.future.done():
                    continue  # cancelled
                if not full:
                    ready = self.ledger.global_ready_at(now, lane)
                    full = ready is None or ready > now
                    if full:
                        wake = _earliest(wake, ready)
                if full:
                    kept.append(waiter)
                    continue
                ready = self.ledger.chat_ready_at(waiter.chat, now)
                if ready is None or ready > now:
                    wake = _earliest(wake, ready)
                    kept.append(waiter)
                    continue
                waiter.future.set_result(self.ledger.start(waiter.chat, now))
            self._waiting[lane] = kept
        if wake is not None:
            delay = max(0.0, wake - now)
            self._timer = asyncio.get_running_loop().call_later(delay, self._dispatch)


def _earliest(current: float | None, candidate: float | None) -> float | None:
    if candidate is None:
        return current
    return candidate if current is None else min(current, candidate)


class RateBudget:
    """The broadcast's average rate: a token bucket of `rate` a second holding up to `burst`
    (one second's worth by default, so a broadcast slowed by replies or a busy moment catches
    up); `pause` stops everyone using it."""

    def __init__(
        self,
        rate: float,
        burst: float | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.rate = rate
        self.burst = burst if burst is not None else max(1.0, rate)
        self._clock = clock
        self._tokens = 1.0
        self._updated = clock()
        self._paused_until = -math.inf
        self._lock = asyncio.Lock()

    def pause(self, seconds: float) -> None:
        """Nobody acquires for `seconds` (Telegram's retry_after)."""
        self._paused_until = max(self._paused_until, self._clock() + seconds)
        self._tokens = 0.0

    async def acquire(self) -> None:
        """Wait for a token."""
        async with self._lock:
            while True:
                now = self._clock()
                if now < self._paused_until:
                    await asyncio.sleep(self._paused_until - now)
                    self._updated = self._clock()
                    continue
                self._tokens = min(self.burst, self._tokens + (now - self._updated) * self.rate)
                self._updated = now
                if self._tokens >= 1 - 1e-9:  # not less for a rounding error
                    self._tokens = max(0.0, self._tokens - 1)
                    return
                await asyncio.sleep((1 - self._tokens) / self.rate)
