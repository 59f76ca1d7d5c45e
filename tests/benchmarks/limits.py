"""Under Telegram's limits: the broadcast rate, 429s, and how fast /help is answered meanwhile."""

from __future__ import annotations

import asyncio
import bisect
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bot.content import Content
from bot.db.models import utcnow
from tests.benchmarks.dataset import FIRST_USER_ID, create_database, due_subscribers
from tests.benchmarks.harness import (
    Arrival,
    BenchmarkError,
    Measure,
    bot_env,
    fake_server,
    log,
    median,
    percentile,
    send_rate,
    spawn,
    watch,
)

RATE_SHARE_TARGET = 0.9
HELP_P99_TARGET_MS = 300.0
HELP_FIRST_ID = 900_000_001  # not subscribers
REPLY_WAIT = 5.0
STALL = 60.0


@dataclass(frozen=True, slots=True)
class LimitsOptions:
    messages: int
    rate: float
    help_interval: float
    help_users: int
    tip_views: int
    past_deliveries: int


def _latencies(
    commands: list[tuple[int, float]], arrivals: list[Arrival]
) -> tuple[list[float], int, int]:
    """Per command: ms from enqueue to the first sendMessage to that chat; missing; throttled."""
    replies: dict[int, list[Arrival]] = defaultdict(list)
    for arrival in arrivals:
        if arrival.method.lower() == "sendmessage" and arrival.chat_id is not None:
            replies[arrival.chat_id].append(arrival)
    for chat in replies.values():
        chat.sort(key=lambda a: a.received)
    latencies: list[float] = []
    missing = throttled = 0
    for chat_id, sent_at in commands:
        chat = replies.get(chat_id, [])
        index = bisect.bisect_left([a.received for a in chat], sent_at)
        if index == len(chat) or chat[index].received - sent_at > REPLY_WAIT:
            missing += 1
        elif chat[index].status != 200:
            throttled += 1
        else:
            latencies.append((chat[index].received - sent_at) * 1000)
    return latencies, missing, throttled


async def run(
    content: Content, folder: Path, options: LimitsOptions
) -> tuple[list[Measure], dict[str, Any]]:
    database = folder / "limits.db"
    log(f"limits: writing {options.messages:,} due subscribers")
    people = due_subscribers(options.messages, utcnow(), list(content.topics))
    await create_database(
        database,
        people,
        content,
        tip_views=options.tip_views,
        past_deliveries=options.past_deliveries,
    )
    expected_seconds = options.messages / options.rate
    commands: list[tuple[int, float]] = []
    async with fake_server(enforce_limits=True) as api:
        api.tracked_chats = range(FIRST_USER_ID, FIRST_USER_ID + options.messages)
        env = bot_env(api, database, DELIVERY_RATE_PER_SECOND=f"{options.rate:g}")
        child = await spawn("limits", ["-m", "bot"], env, folder)
        try:
            await watch(child, api, lambda: api.tracked_ok >= 1, 300, "first delivery")
            log(
                f"limits: draining {options.messages:,} at {options.rate:g}/s "
                f"(~{expected_seconds:.0f} s) while /help is sent every "
                f"{options.help_interval:g} s"
            )
            deadline = time.monotonic() + expected_seconds * 2 + 120
            next_at = time.monotonic()
            report_at = next_at + 60
            last, moved_at = api.tracked_ok, next_at
            while api.tracked_ok < options.messages:
                child.check_alive()
                now = time.monotonic()
                if now > deadline:
                    raise BenchmarkError(
                        f"only {api.tracked_ok} of {options.messages} delivered in time"
                    )
                if api.tracked_ok != last:
                    last, moved_at = api.tracked_ok, now
                elif now - moved_at > STALL:
                    raise BenchmarkError(
                        f"no delivery for {STALL:.0f} s (at {last})\n{child.tail()}"
                    )
                if now >= report_at:
                    report_at += 60
                    log(f"limits: {api.tracked_ok:,} of {options.messages:,} delivered")
                user = HELP_FIRST_ID + len(commands) % options.help_users
                commands.append((user, time.monotonic()))
                api.send_command(user, "help")
                next_at += options.help_interval
                await asyncio.sleep(max(0.0, next_at - time.monotonic()))
            await asyncio.sleep(1.0)  # the last /help's reply
        finally:
            await child.stop(api)
        deliveries = [
            a
            for a in api.arrivals
            if a.method.lower() == "sendmessage"
            and a.status == 200
            and a.chat_id is not None
            and a.chat_id in api.tracked_chats
        ]
        throttled_total = api.throttled_count
        arrivals = list(api.arrivals)
    if len(deliveries) != options.messages:
        raise BenchmarkError(f"{len(deliveries)} deliveries arrived, expected {options.messages}")
    rate, span = send_rate(deliveries)
    share = rate / options.rate
    latencies, missing, help_throttled = _latencies(commands, arrivals)
    if not latencies:
        raise BenchmarkError("no /help was answered")
    p50, p99 = median(latencies), percentile(latencies, 99)
    measures = [
        Measure(
            "limits.delivery_rate",
            f"delivery rate, {options.messages:,} at DELIVERY_RATE_PER_SECOND={options.rate:g}",
            rate,
            "msg/s",
            f">= {options.rate * RATE_SHARE_TARGET:g} msg/s (90%)",
            share >= RATE_SHARE_TARGET,
        ),
        Measure(
            "limits.rate_share",
            f"achieved / {options.rate:g} per s",
            share,
            "x",
            f">= {RATE_SHARE_TARGET:g}",
            share >= RATE_SHARE_TARGET,
        ),
        Measure(
            "limits.throttled_429",
            "429 answers from the fake (all calls)",
            throttled_total,
            "count",
            "0",
            throttled_total == 0,
            zero_ok=True,
        ),
        Measure("limits.help_p50_ms", "/help reply latency p50 while draining", p50, "ms"),
        Measure(
            "limits.help_p99_ms",
            "/help reply latency p99 while draining",
            p99,
            "ms",
            f"<= {HELP_P99_TARGET_MS:g} ms",
            p99 <= HELP_P99_TARGET_MS and missing == 0,
        ),
    ]
    details = {
        "messages": options.messages,
        "delivery_rate_per_second": options.rate,
        "seconds_first_to_last": span,
        "throttled_429": throttled_total,
        "help": {
            "interval_seconds": options.help_interval,
            "users": options.help_users,
            "note": (
                "commands rotate over the users so that no chat gets more than Telegram's "
                "1 message/s; every command is still one /help every interval"
            ),
            "commands": len(commands),
            "answered": len(latencies),
            "missing": missing,
            "throttled": help_throttled,
            "p50_ms": p50,
            "p90_ms": percentile(latencies, 90),
            "p99_ms": p99,
            "max_ms": max(latencies),
        },
    }
    return measures, details
