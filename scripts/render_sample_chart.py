"""Draw docs/trends-sample.png, the chart the README shows, from made-up check-ins.

Run from the repository root: `.venv/bin/python scripts/render_sample_chart.py`
"""

from __future__ import annotations

import random
import sys
from datetime import date, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bot.charts import ChartLabels, DayPoint, render_trends  # noqa: E402

OUTPUT = ROOT / "docs" / "trends-sample.png"
END = date(2025, 6, 3)
DAYS = 30
SEED = 20250603

# These texts mirror the content/messages.yml keys `charts.*`, which the bot turns into
# ChartLabels in bot.views.chart_labels:
#   charts.title: "Your last 30 days"
#   charts.week_title: "Your week"
#   charts.pain_stress_axis: "Pain and stress (0–10)"
#   charts.mood_sleep_axis: "Mood and sleep (1–5)"
#   charts.pain: "Pain"
#   charts.stress: "Stress"
#   charts.rolling_mean: "7-day mean"
#   charts.mood: "Mood"
#   charts.sleep: "Sleep"
#   charts.no_data: "No check-ins in this period"
#   charts.date_format: "{day} {month}"
#   charts.month_names: "Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec"
LABELS = ChartLabels(
    title="Your last 30 days",
    pain_stress_axis="Pain and stress (0–10)",
    mood_sleep_axis="Mood and sleep (1–5)",
    pain="Pain",
    stress="Stress",
    rolling_mean="7-day mean",
    mood="Mood",
    sleep="Sleep",
    no_data="No check-ins in this period",
    date_format="{day} {month}",
    month_names=(
        "Jan",
        "Feb",
        "Mar",
        "Apr",
        "May",
        "Jun",
        "Jul",
        "Aug",
        "Sep",
        "Oct",
        "Nov",
        "Dec",
    ),
)


def _clamp(value: float, low: float, high: float) -> float:
    return min(high, max(low, value))


def _half(value: float) -> float:
    return _clamp(round(value * 2) / 2, 1, 5)


def sample_points(*, end: date = END, days: int = DAYS, seed: int = SEED) -> list[DayPoint]:
    """Check-ins for `days` days (plus the 6 before, for the first 7-day means): pain follows
    stress, both ease gently over the weeks, mood and sleep improve as they do; a few days are
    missing, and on some days only pain and stress were reported."""
    rng = random.Random(seed)
    total = days + 6
    first = end - timedelta(days=total - 1)
    missing = {9, 16, 17, 26, 31}
    points: list[DayPoint] = []
    stress_level = 6.8
    for i in range(total):
        if i in missing:
            continue
        progress = i / (total - 1)
        # A slowly improving baseline with day-to-day noise that carries over a little.
        stress_level = 0.5 * stress_level + 0.5 * (6.9 - 3.0 * progress) + rng.gauss(0, 0.9)
        stress = _clamp(stress_level, 0, 10)
        pain = _clamp(0.7 * stress + 1.6 - 1.0 * progress + rng.gauss(0, 0.6), 0, 10)
        calm = (10 - stress) / 10
        # Daily means of one or two check-ins: whole or half points.
        mood: float | None = _half(1.0 + 3.6 * calm + rng.gauss(0, 0.35))
        sleep: float | None = _half(1.3 + 2.6 * calm + 0.8 * progress + rng.gauss(0, 0.5))
        if rng.random() < 0.12:
            mood = sleep = None
        points.append(
            DayPoint(
                day=first + timedelta(days=i),
                pain=round(pain, 1),
                stress=round(stress, 1),
                mood=mood,
                sleep=sleep,
            )
        )
    return points


def main() -> None:
    OUTPUT.parent.mkdir(parents=True, exist_ok=True)
    OUTPUT.write_bytes(render_trends(sample_points(), LABELS, days=DAYS, end=END))
    print(OUTPUT.relative_to(ROOT))


if __name__ == "__main__":
    main()
