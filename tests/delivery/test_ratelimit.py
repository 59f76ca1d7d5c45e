"""Telegram's limits for every message the bot sends: replies first, the broadcast after.

Most tests run on a virtual clock (an event loop whose time jumps to the next timer), so they
check what the limiter lets through when, exactly and fast, whatever the machine is doing.
Telegram is modelled by the fake Bot API's own limiter (30 a second in a sliding window, about
one a second per chat with a burst of three), counted where a request *arrives*.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import random
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any, TypeVar

import pytest
from telegram.error import RetryAfter
from telegram.ext import ExtBot

from bot.app import build_application
from bot.config import Settings
from bot.content import Content
from bot.delivery import ratelimit
from bot.delivery.ratelimit import (
    GROUP_CHAT,
    Lane,
    RateBudget,
    SendLedger,
    TelegramRateLimiter,
    broadcasting,
    current_lane,
    global_limit,
)
from bot.delivery.sender import Sender
from bot.devtools import fake_bot_api
from bot.views import View
from tests.fakes.telegram_api import TEST_TOKEN, FakeBotAPI, FakeRequest

T = TypeVar("T")
Clock = Callable[[], float]


def run_virtual(main: Callable[[Clock], Coroutine[Any, Any, T]]) -> T:
    """Run `main(clock)` on an event loop whose clock jumps ahead whenever it would wait."""
    loop = asyncio.new_event_loop()
    now = [0.0]

    def clock() -> float:
        return now[0]

    loop.time = clock  # type: ignore[method-assign]
    selector = loop._selector  # type: ignore[attr-defined]
    real_select = selector.select

    def select(timeout: float | None = None) -> Any:
        events = real_select(0)
        if not events:
            if timeout is None:
                raise RuntimeError("deadlock: every task waits and no timer is set")
            now[0] += timeout
        return events

    selector.select = select
    try:
        return loop.run_until_complete(main(clock))
    finally:
        loop.close()


def telegram_model(monkeypatch: pytest.MonkeyPatch, clock: Clock) -> Any:
    """The fake Bot API's limiter, reading the virtual clock."""
    monkeypatch.setattr(fake_bot_api, "time", SimpleNamespace(monotonic=clock))
    return fake_bot_api._RateLimiter(30, 1.0, 3)


async def via(
    limiter: TelegramRateLimiter,
    call: Callable[..., Coroutine[Any, Any, Any]],
    chat: int,
    endpoint: str = "sendMessage",
) -> Any:
    return await limiter.process_request(call, (chat,), {}, endpoint, {"chat_id": chat}, None)


# ------------------------------------------------------------------------------ the ledger


def test_a_message_counts_from_its_start_until_a_second_after_its_answer() -> None:
    ledger = SendLedger(30)
    slots = [ledger.start(chat, 0.0) for chat in range(1, 31)]
    assert ledger.global_ready_at(0.0, Lane.REPLY) is None, "all 30 in flight: wait for answers"
    for n, slot in enumerate(slots):
        ledger.finish(slot, 0.2 + n * 0.01)
    # The first answer came at 0.2: that request may have reached Telegram as late as 0.2.
    assert ledger.global_ready_at(0.5, Lane.REPLY) == pytest.approx(1.2)
    assert ledger.global_ready_at(1.2, Lane.REPLY) == 1.2
    assert ledger.held(1.2) == 29


def test_the_broadcast_leaves_a_reserve_for_replies() -> None:
    ledger = SendLedger(30, reserve=3)
    for chat in range(1, 28):
        assert ledger.global_ready_at(0.0, Lane.BROADCAST) == 0.0
        ledger.start(chat, 0.0)
    assert ledger.global_ready_at(0.0, Lane.BROADCAST) is None
    assert ledger.global_ready_at(0.0, Lane.REPLY) == 0.0


def test_a_chat_gets_a_burst_of_three_then_one_a_second_after_the_answers() -> None:
    ledger = SendLedger(30)
    for _ in range(3):
        assert ledger.chat_ready_at(7, 0.0) == 0.0
        ledger.finish(ledger.start(7, 0.0), 0.1)
    assert ledger.chat_ready_at(8, 0.1) == 0.1, "other chats are not affected"
    assert ledger.chat_ready_at(7, 0.1) == pytest.approx(1.1)
    ledger.finish(ledger.start(7, 1.1), 1.15)
    assert ledger.chat_ready_at(7, 1.15) == pytest.approx(2.1)  # one a second since 0.1


def test_groups_get_at_most_twenty_messages_a_minute() -> None:
    ledger = SendLedger(30)
    now, sent = 0.0, []
    while now < 120:
        ready = ledger.chat_ready_at(-100, now)
        assert ready is not None
        now = max(now, ready)
        ledger.finish(ledger.start(-100, now), now)
        sent.append(now)
    assert GROUP_CHAT.burst + 60 * GROUP_CHAT.rate == pytest.approx(20)
    for first in range(len(sent)):
        assert sum(1 for t in sent[first:] if t < sent[first] + 60) <= 20


def test_quiet_chats_are_forgotten() -> None:
    ledger = SendLedger(30)
    for chat in range(1, 1001):
        ledger.finish(ledger.start(chat, 0.0), 0.0)
    for _ in range(2):
        ledger.finish(ledger.start(-100, 9.5), 9.5)
    assert ledger.chats_remembered == 1001
    # The next sweep: a chat's past is forgotten once its bucket is full again (a private chat
    # one second after a single message); the group's two messages still count.
    ledger.start(5000, 11.0)
    assert ledger.chats_remembered == 2
    ledger.start(5001, 3600.0)
    assert ledger.chats_remembered == 2, "5000 (in flight) and 5001"


def test_the_limit_for_the_process() -> None:
    assert global_limit(None, 25) == 30
    assert global_limit(None, 400) == 480, "a broadcast budgeted above 30 is not capped at 30"
    assert global_limit(12, 25) == 12
    assert global_limit(0, 25) == 0, "0: no limiter"


# ------------------------------------------------------------------------------ the 429s


@dataclass
class Drain:
    """What Telegram saw while a broadcast drained with /help replies going on."""

    arrivals: list[tuple[float, int, bool]] = field(default_factory=list)  # at, chat, accepted
    reply_waits: dict[str, list[tuple[float, float]]] = field(default_factory=dict)  # asked, start
    tip_starts: list[float] = field(default_factory=list)
    tips_sent: int = 0
    broadcast_rate: float = 0.0

    @property
    def throttled(self) -> int:
        return sum(1 for _, _, ok in self.arrivals if not ok)


TIPS = 1500
HELP_CHATS = [900_000_001 + n for n in range(4)]


async def drain(
    clock: Clock, telegram: Any, limiter: TelegramRateLimiter | None, budget: RateBudget
) -> Drain:
    """The limits benchmark in miniature: TIPS tips at 25/s through 8 workers; a /help every
    0.5 s over 4 chats; a person who just got a tip asks for /help; a check-in answered with
    three messages followed by a command. Every 2 s Telegram's front end stalls for 0.3 s, so
    requests sent evenly arrive bunched (the cause of the 429s)."""
    rng = random.Random(7)
    result = Drain()
    tips_sent: list[float] = []

    def arrival_time(start: float) -> float:
        at = start + rng.uniform(0.001, 0.02)
        stall_start = (at // 2.0) * 2.0
        return stall_start + 0.3 if at < stall_start + 0.3 else at

    async def call(chat: int) -> dict[str, Any]:
        start = clock()
        await asyncio.sleep(arrival_time(start) - start)
        wait = telegram.acquire(chat)
        result.arrivals.append((clock(), chat, wait is None))
        await asyncio.sleep(rng.uniform(0.001, 0.02))
        if wait is not None:
            raise RetryAfter(wait)
        return {"chat": chat}

    async def send(chat: int, waits: list[tuple[float, float]] | None = None) -> None:
        handed = clock()

        async def timed(chat: int) -> dict[str, Any]:
            if waits is None:
                result.tip_starts.append(clock())
            else:
                waits.append((handed, clock()))  # when it was asked for, when it went
            return await call(chat)

        if limiter is None:
            await timed(chat)
        else:
            await via(limiter, timed, chat)

    queue: asyncio.Queue[int] = asyncio.Queue()
    for chat in range(1, TIPS + 1):
        queue.put_nowait(chat)

    async def worker() -> None:
        while not queue.empty():
            chat = queue.get_nowait()
            while True:
                await budget.acquire()
                try:
                    with broadcasting():
                        await send(chat)
                except RetryAfter as exc:
                    budget.pause(exc.retry_after.total_seconds())  # type: ignore[union-attr]
                    continue
                tips_sent.append(clock())
                break

    async def reply(kind: str, chat: int, messages: int = 1) -> None:
        for _ in range(messages):
            with contextlib.suppress(RetryAfter):  # counted on Telegram's side
                await send(chat, result.reply_waits.setdefault(kind, []))

    async def people() -> None:
        for n in itertools.count():
            if queue.empty():
                return
            await reply("help", HELP_CHATS[n % 4])
            if n % 7 == 3 and tips_sent:
                await reply("help after a tip", 1 + len(tips_sent) - 1)  # the latest tip's chat
            if n % 40 == 20:
                await reply("check-in", 800_000_000 + n, messages=3)
                await reply("command after a check-in", 800_000_000 + n)
            await asyncio.sleep(0.5)

    await asyncio.gather(*(worker() for _ in range(8)), people())
    result.tips_sent = len(tips_sent)
    result.broadcast_rate = (len(tips_sent) - 1) / (tips_sent[-1] - tips_sent[0])
    return result


def test_bunched_arrivals_cause_429s_under_the_budget_alone(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Without the limiter (the broadcast's token bucket at 25/s and replies unthrottled, as
    before), the same scenario gets 429s: this is what the limiter has to prevent."""

    async def main(clock: Clock) -> Drain:
        budget = RateBudget(25.0, burst=1.0, clock=clock)
        return await drain(clock, telegram_model(monkeypatch, clock), None, budget)

    assert run_virtual(main).throttled > 0


def test_no_429_with_replies_and_broadcast_mixed(monkeypatch: pytest.MonkeyPatch) -> None:
    async def main(clock: Clock) -> Drain:
        limiter = TelegramRateLimiter(30, clock=clock)
        budget = RateBudget(25.0, clock=clock)
        return await drain(clock, telegram_model(monkeypatch, clock), limiter, budget)

    result = run_virtual(main)
    assert result.throttled == 0
    assert result.tips_sent == TIPS
    assert result.broadcast_rate >= 0.9 * 25
    # A reply is never held back behind the broadcast: no tip starts while a reply waits for
    # room in the second, and that wait is for the next free slot (more replies at once than
    # the reserve) ...
    for kind in ("help", "help after a tip", "check-in"):
        for asked, went in result.reply_waits[kind]:
            assert not [t for t in result.tip_starts if asked < t < went], kind
        assert max(went - asked for asked, went in result.reply_waits[kind]) < 0.3, kind
    # ... or for its chat: the fourth message within a second to one chat waits about a
    # second after the first three were answered, instead of getting a 429.
    waits = [went - asked for asked, went in result.reply_waits["command after a check-in"]]
    assert 0.5 < max(waits) < 1.5
    times = sorted(t for t, _, _ in result.arrivals)
    assert max(sum(1 for t in times[i:] if t < first + 1.0) for i, first in enumerate(times)) <= 30


# ------------------------------------------------------------------------------ priority


def test_a_reply_does_not_queue_behind_the_broadcast_backlog() -> None:
    async def main(clock: Clock) -> tuple[list[tuple[float, str]], float]:
        limiter = TelegramRateLimiter(30, clock=clock)
        started: list[tuple[float, str]] = []

        async def call(chat: int) -> dict[str, Any]:
            started.append((clock(), "reply" if chat > 10_000 else "tip"))
            await asyncio.sleep(0.05)
            return {}

        async def tip(chat: int) -> None:
            with broadcasting():
                await via(limiter, call, chat)

        tips = [asyncio.create_task(tip(chat)) for chat in range(1, 201)]
        await asyncio.sleep(0.01)
        assert limiter.waiting(Lane.BROADCAST) == 200 - 27  # the reserve stays free
        # Five people at once, more than the reserve: three start now, two take the first
        # slots that free up (when the first tips' second is over), before any waiting tip.
        await asyncio.gather(*(via(limiter, call, 20_000 + n) for n in range(5)))
        await asyncio.gather(*tips)
        return started, clock()

    started, _ = run_virtual(main)
    kinds = [kind for _, kind in started]
    assert kinds[:27] == ["tip"] * 27
    assert kinds[27:32] == ["reply"] * 5, "every reply goes before the 173 waiting tips"
    assert [at for at, _ in started[27:32]] == pytest.approx([0.01] * 3 + [1.05] * 2)


def test_retry_after_pauses_the_broadcast_and_the_reply_is_sent_after_the_wait() -> None:
    async def main(clock: Clock) -> tuple[list[tuple[float, int]], TelegramRateLimiter]:
        limiter = TelegramRateLimiter(30, clock=clock)
        seen: list[tuple[float, int]] = []
        refused = {20_001}

        async def call(chat: int) -> dict[str, Any]:
            seen.append((clock(), chat))
            await asyncio.sleep(0.01)
            if chat in refused:
                refused.discard(chat)
                raise RetryAfter(2)
            return {}

        async def tips() -> None:
            with broadcasting():
                for chat in range(1, 80):
                    await via(limiter, call, chat)
                    await asyncio.sleep(0.04)

        broadcast = asyncio.create_task(tips())
        await asyncio.sleep(0.5)
        await via(limiter, call, 20_001)  # refused once, then sent after the wait
        await broadcast
        return seen, limiter

    seen, limiter = run_virtual(main)
    refused_at = next(t for t, chat in seen if chat == 20_001)
    retried_at = [t for t, chat in seen if chat == 20_001][1]
    assert retried_at >= refused_at + 2
    assert limiter.retry_after_count == 1
    paused = [chat for t, chat in seen if refused_at + 0.011 < t < refused_at + 2.0 and chat < 80]
    assert paused == [], "no tip starts while Telegram asked to wait"


def test_a_reply_is_not_delayed_by_a_paused_broadcast() -> None:
    async def main(clock: Clock) -> float:
        limiter = TelegramRateLimiter(30, clock=clock)

        async def call(chat: int) -> dict[str, Any]:
            return {}

        limiter.pause_broadcast(5.0)
        await via(limiter, call, 20_001)
        return clock()

    assert run_virtual(main) == 0.0


def test_other_requests_pass_straight_through() -> None:
    async def main(clock: Clock) -> int:
        limiter = TelegramRateLimiter(1, clock=clock)
        slot = await limiter.acquire(5)  # the only slot, never answered

        async def call(chat: int) -> dict[str, Any]:
            return {}

        for endpoint in ("editMessageText", "answerCallbackQuery", "sendChatAction"):
            await via(limiter, call, 5, endpoint)
        limiter.release(slot)
        return limiter.waiting(Lane.REPLY)

    assert run_virtual(main) == 0


# ------------------------------------------------------------------------------ wiring


class LaneSpy(TelegramRateLimiter):
    def __init__(self) -> None:
        super().__init__(1000)
        self.lanes: list[tuple[str, Lane]] = []

    async def process_request(self, callback, args, kwargs, endpoint, data, rate_limit_args):  # type: ignore[no-untyped-def]
        self.lanes.append((endpoint, current_lane()))
        return await super().process_request(callback, args, kwargs, endpoint, data, None)


async def test_the_sender_sends_in_the_broadcast_lane_and_everything_else_is_a_reply() -> None:
    api = FakeBotAPI(TEST_TOKEN)
    spy = LaneSpy()
    async with ExtBot(TEST_TOKEN, request=FakeRequest(api), rate_limiter=spy) as bot:
        sender = Sender(bot, RateBudget(1000.0))
        await sender.send(1, View("a tip"))
        await bot.send_message(1, "a reply")
    sends = [lane for endpoint, lane in spy.lanes if endpoint == "sendMessage"]
    assert sends == [Lane.BROADCAST, Lane.REPLY]


def test_the_application_sends_through_one_limiter(
    make_settings: Callable[..., Settings], content: Content
) -> None:
    def limiter_of(**settings: object) -> object:
        return build_application(make_settings(**settings), content).bot.rate_limiter

    limiter = limiter_of(telegram_global_rate=None)  # the default
    assert isinstance(limiter, TelegramRateLimiter)
    assert (limiter.ledger.limit, limiter.ledger.reserve) == (30, 3)
    assert limiter_of(telegram_global_rate=0) is None
    blank = Settings(_env_file=None, telegram_global_rate="")
    assert blank.telegram_global_rate is None
    assert ratelimit.counts_as_message("sendPhoto")
    assert not ratelimit.counts_as_message("sendChatAction")
