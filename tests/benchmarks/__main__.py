"""`python -m tests.benchmarks [--quick] [--json PATH] [--only SCENARIO ...] [sizes]`.

Prints one table (measure, value, target, met?) and writes the JSON report to
tests/benchmarks/results/<UTC timestamp>.json, or to --json PATH. Exit code 0 when every
scenario could be measured (whether its targets are met or not), 1 otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import sys
import tempfile
import time
import traceback
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bot.content import Content, load_content
from tests.benchmarks import checkins, claiming, limits, pipeline, startup
from tests.benchmarks.harness import ROOT, Measure, log, machine_facts, table

RESULTS = Path(__file__).resolve().parent / "results"
SCENARIOS = ("startup", "claim", "checkins", "pipeline", "limits")

Result = tuple[list[Measure], dict[str, Any]]
Scenario = Callable[[Content, Path], Awaitable[Result]]

# Full sizes are the issue's; --quick shrinks them to a smoke run of well under a minute.
FULL: dict[str, float] = {
    "startup_users": 100_000,
    "startup_rounds": 2,
    "claim_users": 100_000,
    "due": 1_000,
    "due_runs": 500,
    "tip_views": 10,
    "past_deliveries": 3,
    "pipeline_messages": 5_000,
    "pipeline_rounds": 3,
    "pipeline_rate": 5_000,
    "pipeline_tick": 0.2,
    "limits_messages": 10_000,
    "limits_rate": 25,
    "help_interval": 0.5,
    "help_users": 4,
    "checkin_users": 10_000,
    "checkins": 1_000_000,
    "checkin_writers": 20,
    "checkin_seconds": 10.0,
    "history_runs": 2_000,
    "trends_runs": 30,
}
QUICK: dict[str, float] = {
    **FULL,
    "startup_users": 300,
    "startup_rounds": 1,
    "claim_users": 300,
    "due": 30,
    "due_runs": 50,
    "pipeline_messages": 200,
    "pipeline_rounds": 1,
    "limits_messages": 120,
    "checkin_users": 200,
    "checkins": 20_000,
    "checkin_seconds": 1.5,
    "history_runs": 200,
    "trends_runs": 3,
}


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(
        prog="python -m tests.benchmarks",
        description=(
            "BackCalm benchmarks: start-up, claiming, check-ins, pipeline vs bare, Telegram limits."
        ),
    )
    root.add_argument("--quick", action="store_true", help="tiny sizes: a smoke run")
    root.add_argument("--json", type=Path, help="write the JSON report here")
    root.add_argument(
        "--only", action="append", choices=SCENARIOS, help="run only this scenario (repeatable)"
    )
    root.add_argument(
        "--keep",
        action="store_true",
        help="keep the databases and process logs; cache the check-in database in results/cache",
    )
    sizes = root.add_argument_group("sizes (defaults: the issue's; --quick shrinks them)")
    for name, value in FULL.items():
        kind = float if isinstance(value, float) else int
        sizes.add_argument(f"--{name.replace('_', '-')}", type=kind, metavar=kind.__name__.upper())
    return root


def sizes(args: argparse.Namespace) -> dict[str, Any]:
    base = QUICK if args.quick else FULL
    return {name: getattr(args, name) or base[name] for name in FULL}


def scenarios(size: dict[str, Any], *, keep: bool = False) -> dict[str, Scenario]:
    def run_startup(content: Content, folder: Path) -> Awaitable[Result]:
        return startup.run(
            content,
            folder,
            startup.StartupOptions(users=size["startup_users"], rounds=size["startup_rounds"]),
        )

    def run_claim(content: Content, folder: Path) -> Awaitable[Result]:
        return claiming.run(
            content,
            folder,
            claiming.ClaimOptions(
                users=size["claim_users"],
                tip_views=size["tip_views"],
                past_deliveries=size["past_deliveries"],
                due=size["due"],
                runs=size["due_runs"],
            ),
        )

    def run_pipeline(content: Content, folder: Path) -> Awaitable[Result]:
        return pipeline.run(
            content,
            folder,
            pipeline.PipelineOptions(
                messages=size["pipeline_messages"],
                rounds=size["pipeline_rounds"],
                rate=size["pipeline_rate"],
                tick=size["pipeline_tick"],
                tip_views=size["tip_views"],
                past_deliveries=size["past_deliveries"],
            ),
        )

    def run_limits(content: Content, folder: Path) -> Awaitable[Result]:
        return limits.run(
            content,
            folder,
            limits.LimitsOptions(
                messages=size["limits_messages"],
                rate=size["limits_rate"],
                help_interval=size["help_interval"],
                help_users=size["help_users"],
                tip_views=size["tip_views"],
                past_deliveries=size["past_deliveries"],
            ),
        )

    def run_checkins(content: Content, folder: Path) -> Awaitable[Result]:
        return checkins.run(
            content,
            folder,
            checkins.CheckinOptions(
                users=size["checkin_users"],
                checkins=size["checkins"],
                writers=size["checkin_writers"],
                write_seconds=size["checkin_seconds"],
                history_runs=size["history_runs"],
                trends_runs=size["trends_runs"],
                cache=RESULTS / "cache" if keep else None,
            ),
        )

    # In-process scenarios first, while nothing else of ours runs.
    return {
        "claim": run_claim,
        "checkins": run_checkins,
        "startup": run_startup,
        "pipeline": run_pipeline,
        "limits": run_limits,
    }


async def run_all(args: argparse.Namespace) -> int:
    size = sizes(args)
    wanted: Sequence[str] = args.only or SCENARIOS
    report: dict[str, Any] = {
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "quick": args.quick,
        "command": " ".join(["python -m tests.benchmarks", *sys.argv[1:]]),
        "sizes": size,
        "machine": machine_facts(),
        "measures": [],
        "details": {},
        "errors": {},
    }
    content = load_content(ROOT / "content")
    work = Path(tempfile.mkdtemp(prefix="backcalm-bench-"))
    measures: list[Measure] = []
    started = time.monotonic()
    try:
        for name, scenario in scenarios(size, keep=args.keep).items():
            if name not in wanted:
                continue
            folder = work / name
            folder.mkdir()
            began = time.monotonic()
            try:
                found, details = await scenario(content, folder)
            except Exception as exc:  # one broken scenario must not hide the others
                log(f"{name}: FAILED: {exc}")
                report["errors"][name] = "".join(traceback.format_exception(exc))[-4000:]
                continue
            details["scenario_seconds"] = round(time.monotonic() - began, 1)
            measures += found
            report["details"][name] = details
    finally:
        if args.keep:
            log(f"databases and logs kept in {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    report["measures"] = [m.as_json() for m in measures]
    report["machine"]["load_average_at_end"] = list(os.getloadavg())
    report["total_seconds"] = round(time.monotonic() - started, 1)
    report["finished_at"] = datetime.now(UTC).isoformat(timespec="seconds")

    print(table(measures))
    if report["errors"]:
        print("\nnot measured: " + ", ".join(report["errors"]))
    path = args.json
    if path is None:
        RESULTS.mkdir(exist_ok=True)
        path = RESULTS / (datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ") + ".json")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2, default=str) + "\n", encoding="utf-8")
    print(f"\nJSON: {path}")
    return 1 if report["errors"] else 0


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    return asyncio.run(run_all(args))


if __name__ == "__main__":
    sys.exit(main())
