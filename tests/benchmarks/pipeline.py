"""Pipeline vs bare sends, no rate limit: what the engine costs on top of sending."""

from __future__ import annotations

import inspect
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bot.content import Content
from bot.db.models import utcnow
from bot.delivery.engine import DeliveryEngine
from tests.benchmarks.dataset import (
    FIRST_USER_ID,
    copy_database,
    create_database,
    due_subscribers,
)
from tests.benchmarks.harness import (
    BenchAPI,
    BenchmarkError,
    Measure,
    bot_env,
    fake_server,
    log,
    median,
    send_rate,
    spawn,
    watch,
)

RATIO_TARGET = 0.8


def engine_workers() -> int:
    """The engine's default number of concurrent senders (what the bot runs with)."""
    default = inspect.signature(DeliveryEngine.__init__).parameters["workers"].default
    return int(default)


@dataclass(frozen=True, slots=True)
class PipelineOptions:
    messages: int
    rounds: int
    rate: float
    tick: float
    tip_views: int
    past_deliveries: int


def _timeout(messages: int) -> float:
    return 120.0 + messages / 20


async def _bare(
    api: BenchAPI, folder: Path, database: Path, n: int, workers: int, round_: int
) -> dict[str, Any]:
    mark, target = len(api.arrivals), api.sent_ok + n
    name = f"bare-{round_}"
    args = ["-m", "tests.benchmarks.bare_send", "--first-id", str(FIRST_USER_ID)]
    args += ["--count", str(n), "--workers", str(workers)]
    # No rate limiter: the baseline sends as fast as it can; the bot's limiter (at 1.2 x
    # DELIVERY_RATE_PER_SECOND, far above what is reached here) counts as pipeline cost.
    env = bot_env(api, database, TELEGRAM_GLOBAL_RATE="0")
    child = await spawn(name, args, env, folder)
    try:
        await watch(
            child,
            api,
            lambda: api.sent_ok >= target,
            _timeout(n),
            "bare sends",
            progress=lambda: api.sent_ok,
        )
        code = await child.wait(60)
    finally:
        await child.stop(api)
    if code != 0:
        raise BenchmarkError(f"bare sender exited with {code}:\n{child.tail()}")
    return _summary(api.sends_since(mark), n)


async def _pipeline(
    api: BenchAPI, folder: Path, template: Path, options: PipelineOptions, round_: int
) -> dict[str, Any]:
    database = folder / f"pipeline-{round_}.db"
    copy_database(template, database)
    env = bot_env(
        api,
        database,
        DELIVERY_RATE_PER_SECOND=f"{options.rate:g}",
        DELIVERY_TICK_SECONDS=f"{options.tick:g}",
    )
    mark, target = len(api.arrivals), api.sent_ok + options.messages
    child = await spawn(f"pipeline-{round_}", ["-m", "bot"], env, folder)
    try:
        await watch(
            child,
            api,
            lambda: api.sent_ok >= target,
            _timeout(options.messages),
            "deliveries",
            progress=lambda: api.sent_ok,
        )
    finally:
        await child.stop(api)
    return _summary(api.sends_since(mark), options.messages)


def _summary(sends: list[Any], expected: int) -> dict[str, Any]:
    if len(sends) != expected:
        raise BenchmarkError(f"{len(sends)} messages arrived, expected {expected}")
    if len({s.chat_id for s in sends}) != expected:
        raise BenchmarkError("some chat got more than one message")
    rate, span = send_rate(sends)
    return {
        "messages": len(sends),
        "seconds_first_to_last": span,
        "rate": rate,
        "mean_text_length": sum(s.text_length for s in sends) / len(sends),
    }


async def run(
    content: Content, folder: Path, options: PipelineOptions
) -> tuple[list[Measure], dict[str, Any]]:
    template = folder / "pipeline-template.db"
    log(f"pipeline: writing {options.messages:,} due subscribers")
    started = time.perf_counter()
    people = due_subscribers(options.messages, utcnow(), list(content.topics))
    await create_database(
        template,
        people,
        content,
        tip_views=options.tip_views,
        past_deliveries=options.past_deliveries,
    )
    build_seconds = time.perf_counter() - started
    workers = engine_workers()
    runs: dict[str, list[dict[str, Any]]] = {"bare": [], "pipeline": []}
    async with fake_server() as api:
        for round_ in range(1, options.rounds + 1):
            log(f"pipeline: bare sends, round {round_} of {options.rounds}")
            runs["bare"].append(
                await _bare(api, folder, template, options.messages, workers, round_)
            )
            log(f"pipeline: bare {runs['bare'][-1]['rate']:.0f} msg/s")
            log(f"pipeline: python -m bot, round {round_} of {options.rounds}")
            runs["pipeline"].append(await _pipeline(api, folder, template, options, round_))
            log(f"pipeline: engine {runs['pipeline'][-1]['rate']:.0f} msg/s")
    bare = median([r["rate"] for r in runs["bare"]])
    engine = median([r["rate"] for r in runs["pipeline"]])
    ratio = engine / bare
    n = f"{options.messages:,}"
    measures = [
        Measure("pipeline.bare_rate", f"bare send_message x{n}, {workers} senders", bare, "msg/s"),
        Measure("pipeline.engine_rate", f"python -m bot delivering {n} due tips", engine, "msg/s"),
        Measure(
            "pipeline.ratio",
            "pipeline / bare sends",
            ratio,
            "x",
            f">= {RATIO_TARGET:g}",
            ratio >= RATIO_TARGET,
        ),
    ]
    details = {
        "messages": options.messages,
        "rounds": options.rounds,
        "order": "bare, pipeline, bare, pipeline, ... (medians reported)",
        "workers": workers,
        "delivery_rate_per_second": options.rate,
        "delivery_tick_seconds": options.tick,
        "tip_views_per_user": options.tip_views,
        "database_build_seconds": round(build_seconds, 2),
        "runs": runs,
    }
    return measures, details
