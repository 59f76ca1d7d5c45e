"""Start-up: spawn → first getUpdates, and resident memory then, for the bot and run_daily."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bot.content import Content
from bot.db.models import utcnow
from tests.benchmarks.dataset import create_database, future_subscribers
from tests.benchmarks.harness import (
    BenchAPI,
    BenchmarkError,
    Measure,
    bot_env,
    fake_server,
    log,
    median,
    spawn,
    watch,
)

SECONDS_TARGET = 2.0
RSS_TARGET_MB = 150.0
START_TIMEOUT = 600.0
VARIANTS = {
    "engine": ["-m", "bot"],
    "run_daily": ["-m", "tests.benchmarks.run_daily_baseline"],
}
BASELINE_LINE = re.compile(r"scheduled (\d+) jobs in ([\d.]+) s")


@dataclass(frozen=True, slots=True)
class StartupOptions:
    users: int
    rounds: int


async def _start_once(
    api: BenchAPI, variant: str, database: Path, folder: Path, name: str
) -> dict[str, Any]:
    mark = len(api.arrivals)
    child = await spawn(name, VARIANTS[variant], bot_env(api, database), folder)
    api.expect_first_poll(child.pid)
    try:
        await watch(
            child, api, lambda: api.first_poll_at is not None, START_TIMEOUT, f"{name} polling"
        )
        assert api.first_poll_at is not None
        seconds = api.first_poll_at - child.spawned_at
        rss_kb, hwm_kb = api.first_poll_rss_kb, api.first_poll_hwm_kb
        if rss_kb is None:
            raise BenchmarkError(f"{name}: could not read /proc/{child.pid}/status")
    finally:
        code = await child.stop(api)
    sent = len(api.sends_since(mark))
    if sent:
        raise BenchmarkError(f"{name} sent {sent} messages during start-up; nothing was due")
    run: dict[str, Any] = {
        "seconds": seconds,
        "rss_mb": rss_kb / 1024,
        "peak_rss_mb": (hwm_kb or 0) / 1024,
        "exit_code": code,
    }
    if match := BASELINE_LINE.search(child.tail(50)):
        run["jobs"] = int(match[1])
        run["scheduling_seconds"] = float(match[2])
    return run


async def run(
    content: Content, folder: Path, options: StartupOptions
) -> tuple[list[Measure], dict[str, Any]]:
    database = folder / "startup.db"
    now = utcnow()
    log(f"startup: writing {options.users:,} subscribers, next tips 0.5 to 23.5 h away")
    started = time.perf_counter()
    await create_database(
        database, future_subscribers(options.users, now, list(content.topics)), content
    )
    build_seconds = time.perf_counter() - started
    runs: dict[str, list[dict[str, Any]]] = {variant: [] for variant in VARIANTS}
    async with fake_server() as api:
        for round_ in range(options.rounds):
            for variant in VARIANTS:
                log(f"startup: {variant}, round {round_ + 1} of {options.rounds}")
                result = await _start_once(
                    api, variant, database, folder, f"startup-{variant}-{round_ + 1}"
                )
                log(
                    f"startup: {variant} polled after {result['seconds']:.2f} s "
                    f"with {result['rss_mb']:.0f} MB resident"
                )
                runs[variant].append(result)
    seconds = {v: median([r["seconds"] for r in runs[v]]) for v in VARIANTS}
    rss = {v: median([r["rss_mb"] for r in runs[v]]) for v in VARIANTS}
    users = f"{options.users:,}"
    measures = [
        Measure(
            "startup.engine_seconds",
            f"start-up to first getUpdates, {users} subscribers (engine)",
            seconds["engine"],
            "s",
            f"<= {SECONDS_TARGET:g} s",
            seconds["engine"] <= SECONDS_TARGET,
        ),
        Measure(
            "startup.engine_rss_mb",
            "resident memory at first getUpdates (engine)",
            rss["engine"],
            "MB",
            f"<= {RSS_TARGET_MB:g} MB",
            rss["engine"] <= RSS_TARGET_MB,
        ),
        Measure(
            "startup.run_daily_seconds",
            f"start-up to first getUpdates, {users} subscribers (run_daily)",
            seconds["run_daily"],
            "s",
        ),
        Measure(
            "startup.run_daily_rss_mb",
            "resident memory at first getUpdates (run_daily)",
            rss["run_daily"],
            "MB",
        ),
        Measure(
            "startup.ratio_seconds",
            "start-up time run_daily / engine",
            seconds["run_daily"] / seconds["engine"],
            "x",
        ),
        Measure(
            "startup.ratio_rss",
            "resident memory run_daily / engine",
            rss["run_daily"] / rss["engine"],
            "x",
        ),
    ]
    details = {
        "users": options.users,
        "rounds": options.rounds,
        "database_build_seconds": round(build_seconds, 2),
        "runs": runs,
        "medians": {"seconds": seconds, "rss_mb": rss},
    }
    return measures, details
