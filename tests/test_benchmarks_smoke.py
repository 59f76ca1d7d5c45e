"""`python -m tests.benchmarks --quick` runs end to end and reports every measure.

Only the shape of the report is checked: timings depend on the machine, so none is asserted.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
MEASURES = {
    "startup.engine_seconds",
    "startup.engine_rss_mb",
    "startup.run_daily_seconds",
    "startup.run_daily_rss_mb",
    "startup.ratio_seconds",
    "startup.ratio_rss",
    "claim.users_per_second",
    "claim.prepare_users_per_second",
    "claim.claim_and_prepare_users_per_second",
    "claim.due_sql_p50_ms",
    "claim.due_sql_p99_ms",
    "claim.due_select_p50_ms",
    "claim.due_select_p99_ms",
    "checkins.build_seconds",
    "checkins.write_rate",
    "checkins.write_p50_ms",
    "checkins.write_p99_ms",
    "checkins.write_cpu_ms",
    "checkins.write_errors",
    "checkins.history_p50_ms",
    "checkins.history_p99_ms",
    "checkins.history_handler_p99_ms",
    "checkins.trends_data_p50_ms",
    "checkins.trends_render_p50_ms",
    "checkins.trends_render_p99_ms",
    "checkins.trends_render_cpu_p50_ms",
    "pipeline.bare_rate",
    "pipeline.engine_rate",
    "pipeline.ratio",
    "limits.delivery_rate",
    "limits.rate_share",
    "limits.throttled_429",
    "limits.help_p50_ms",
    "limits.help_p99_ms",
}


@pytest.mark.slow
def test_quick_benchmark_reports_every_measure(tmp_path: Path) -> None:
    report_path = tmp_path / "report.json"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run(
        [sys.executable, "-m", "tests.benchmarks", "--quick", "--json", str(report_path)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    report: dict[str, Any] = json.loads(report_path.read_text(encoding="utf-8"))
    assert report["quick"] is True
    assert report["errors"] == {}
    measures = {m["key"]: m for m in report["measures"]}
    assert set(measures) == MEASURES
    for key, measure in measures.items():
        value = measure["value"]
        assert isinstance(value, int | float), key
        assert math.isfinite(value), key
        if measure["zero_ok"]:
            assert value >= 0, key  # a count whose target is zero, like 429 answers
        else:
            assert value > 0, key
        assert measure["met"] in (True, False, None), key
    machine = report["machine"]
    for fact in ("cpu_count", "python", "sqlite", "load_average_at_start"):
        assert machine[fact], fact
    assert "measure" in result.stdout
    assert "target" in result.stdout
