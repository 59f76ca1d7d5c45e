"""Check-in charts: valid PNGs of the right size, gaps as gaps, and the caller's labels drawn."""

from __future__ import annotations

import dataclasses
import io
from datetime import date, timedelta

import numpy as np
import pytest
from matplotlib.figure import Figure
from matplotlib.image import imread
from matplotlib.lines import Line2D
from matplotlib.text import Text

from bot.charts import (
    ChartLabels,
    DayPoint,
    build_figure,
    render_trends,
    render_week,
    rolling_mean,
    warm_up,
)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
END = date(2025, 6, 3)
MONTHS = ("m01", "m02", "m03", "m04", "m05", "m06", "m07", "m08", "m09", "m10", "m11", "m12")


def labels(**changes: str) -> ChartLabels:
    texts = {
        "title": "T-title",
        "pain_stress_axis": "T-pain-stress-axis",
        "mood_sleep_axis": "T-mood-sleep-axis",
        "pain": "T-pain",
        "stress": "T-stress",
        "rolling_mean": "T-mean",
        "mood": "T-mood",
        "sleep": "T-sleep",
        "no_data": "T-no-data",
        "date_format": "<{month}|{day}>",
    } | changes
    return ChartLabels(month_names=MONTHS, **texts)


def points(days: int, *, end: date = END, skip: frozenset[int] = frozenset()) -> list[DayPoint]:
    return [
        DayPoint(
            day=end - timedelta(days=days - 1 - i),
            pain=(i % 10) * 1.0,
            stress=((i + 3) % 10) * 1.0,
            mood=1.0 + i % 5,
            sleep=5.0 - i % 5,
        )
        for i in range(days)
        if i not in skip
    ]


def drawn_texts(fig: Figure) -> list[str]:
    return [t.get_text() for t in fig.findobj(Text) if t.get_visible() and t.get_text()]


def line(fig: Figure, gid: str) -> Line2D:
    (found,) = [a for a in fig.findobj(Line2D) if a.get_gid() == gid]
    assert isinstance(found, Line2D)
    return found


def ydata(fig: Figure, gid: str) -> np.ndarray:
    return np.asarray(line(fig, gid).get_ydata(), dtype=float)


def png_shape(data: bytes) -> tuple[int, ...]:
    assert data.startswith(PNG_SIGNATURE)
    shape: tuple[int, ...] = imread(io.BytesIO(data), format="png").shape
    return shape


# ---------------------------------------------------------------- rolling mean


def test_rolling_mean_hand_computed() -> None:
    values: list[float | None] = [2.0, 4.0, None, 6.0, 8.0, None, None, 10.0, None, None]
    # day:        0     1     2     3    4    5    6    7     8    9
    expected = [None, None, None, 4.0, 5.0, 5.0, 5.0, 7.0, 8.0, 8.0]
    # 3: (2 + 4 + 6) / 3 once a third value arrives; 6: a day without a value still gets its
    # window's mean; 7: day 0 has left the window, (4 + 6 + 8 + 10) / 4; 9: (6 + 8 + 10) / 3
    assert rolling_mean(values) == [None if e is None else pytest.approx(e) for e in expected]


def test_rolling_mean_needs_three_days_in_the_window() -> None:
    # Two values in any 7-day window: never enough.
    values: list[float | None] = [5.0, None, None, None, None, None, 7.0, None, None, 3.0]
    assert rolling_mean(values) == [None] * len(values)
    assert rolling_mean([]) == []
    assert rolling_mean([None, None, None, 1.0, 2.0, 3.0]) == [None] * 5 + [pytest.approx(2.0)]


def test_rolling_mean_parameters() -> None:
    assert rolling_mean([1.0, 2.0, 3.0, 4.0], window=2, min_count=1) == [1.0, 1.5, 2.5, 3.5]


# ---------------------------------------------------------------- PNG output


def test_render_trends_is_a_phone_sized_png() -> None:
    data = render_trends(points(30), labels(), end=END)
    height, width, _ = png_shape(data)
    assert (width, height) == (1080, 1350)


def test_render_week_is_the_same_chart_for_seven_days() -> None:
    data = render_week(points(20), labels(), end=END)
    assert png_shape(data)[:2] == (1350, 1080)
    fig = build_figure(points(20), labels(), days=7, end=END)
    assert "<m06|3>" in drawn_texts(fig)
    assert "<m05|27>" not in drawn_texts(fig)  # the day before the week is not on the axis


def test_empty_data_renders_the_no_data_text() -> None:
    assert png_shape(render_trends([], labels(), end=END))[:2] == (1350, 1080)
    texts = drawn_texts(build_figure([], labels(), end=END))
    assert texts.count("T-no-data") == 2  # one per panel
    assert "T-title" in texts


def test_a_panel_without_data_says_so_and_the_other_draws() -> None:
    only_pain = [DayPoint(END, pain=3.0, stress=None, mood=None, sleep=None)]
    assert drawn_texts(build_figure(only_pain, labels(), end=END)).count("T-no-data") == 1
    no_data_at_all = [DayPoint(END, pain=None, stress=None, mood=None, sleep=None)]
    assert drawn_texts(build_figure(no_data_at_all, labels(), end=END)).count("T-no-data") == 2


def test_points_outside_the_window_are_not_drawn_as_data() -> None:
    old = points(5, end=END - timedelta(days=40))
    assert drawn_texts(build_figure(old, labels(), end=END)).count("T-no-data") == 2


# ---------------------------------------------------------------- what is drawn


def test_the_labels_passed_in_are_drawn() -> None:
    texts = drawn_texts(build_figure(points(30), labels(title="ZQX-unique-title"), end=END))
    for expected in (
        "ZQX-unique-title",
        "T-pain-stress-axis",
        "T-mood-sleep-axis",
        "T-pain",
        "T-stress",
        "T-mean",
        "T-mood",
        "T-sleep",
        "<m06|3>",  # the last day is always labelled, in the caller's date format
    ):
        assert expected in texts
    assert "T-no-data" not in texts


def test_dollar_signs_are_text_not_mathtext() -> None:
    fig = build_figure(points(3), labels(title="$5 a $day", pain="$x^2$"), end=END)
    fig.canvas.draw()  # would fail, or draw "x²", if parsed as mathtext
    texts = drawn_texts(fig)
    assert "$5 a $day" in texts
    assert "$x^2$" in texts


def test_days_without_data_are_gaps() -> None:
    fig = build_figure(points(30, skip=frozenset({10, 11})), labels(), end=END)
    y = ydata(fig, "pain-daily")
    assert len(y) == 30
    assert np.isnan(y[10:12]).all()
    assert (y[9], y[12]) == (9.0, 2.0)  # drawn as they are, no zeros in between


def test_first_means_use_the_days_before_the_window() -> None:
    fig = build_figure(points(36), labels(), end=END)
    first = ydata(fig, "pain-mean")[0]
    assert first == pytest.approx(sum(i % 10 for i in range(7)) / 7)
    alone = build_figure(points(30), labels(), end=END)
    assert np.isnan(ydata(alone, "pain-mean")[0])  # one day of data: no mean yet


def test_mood_and_sleep_use_different_markers() -> None:
    fig = build_figure(points(30), labels(), end=END)
    assert line(fig, "mood").get_marker() != line(fig, "sleep").get_marker()


# ---------------------------------------------------------------- labels


def test_format_day() -> None:
    assert labels(date_format="{day}. {month}").format_day(date(2025, 2, 7)) == "7. m02"


def test_labels_need_twelve_months() -> None:
    with pytest.raises(ValueError, match="12"):
        dataclasses.replace(labels(), month_names=("Jan",))


def test_warm_up_draws_without_labels_from_content() -> None:
    warm_up()


def test_days_must_be_positive() -> None:
    with pytest.raises(ValueError, match="days"):
        render_trends([], labels(), days=0, end=END)
