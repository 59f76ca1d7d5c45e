"""Check-in trend charts as PNG images, drawn for a phone screen.

Two stacked panels share one date axis: pain and stress (0–10) as thin daily lines with bold
7-day rolling means, and mood and sleep (1–5) as marks. Every word drawn comes from the caller
in a `ChartLabels`, which it builds from `content/messages.yml` (`charts.*`).

Matplotlib is imported only when a chart is first drawn, so importing this module at start-up
costs nothing. Figures use the object-oriented API with the Agg canvas: no pyplot, no global
state, nothing registered that would keep a figure alive after its PNG is written.
"""

from __future__ import annotations

import html
import io
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

# ---------------------------------------------------------------- data and labels


@dataclass(frozen=True, slots=True)
class DayPoint:
    """One local date's mean scores; None for a score not reported that day."""

    day: date
    pain: float | None  # 0–10
    stress: float | None  # 0–10
    mood: float | None  # 1–5
    sleep: float | None  # 1–5


# Field of `ChartLabels` → its key in content/messages.yml. `title` is not here: it differs per
# chart (e.g. `charts.title` with {days}, `charts.week_title`), so the caller renders it.
LABEL_KEYS: Final[dict[str, str]] = {
    "pain_stress_axis": "charts.pain_stress_axis",
    "mood_sleep_axis": "charts.mood_sleep_axis",
    "pain": "charts.pain",
    "stress": "charts.stress",
    "rolling_mean": "charts.rolling_mean",
    "mood": "charts.mood",
    "sleep": "charts.sleep",
    "no_data": "charts.no_data",
    "date_format": "charts.date_format",
    "month_names": "charts.months",
}


@dataclass(frozen=True, slots=True)
class ChartLabels:
    """Every text a chart draws, as plain text (no HTML), from content."""

    title: str
    pain_stress_axis: str  # heading of the upper panel, e.g. "Pain and stress (0–10)"
    mood_sleep_axis: str  # heading of the lower panel, e.g. "Mood and sleep (1–5)"
    pain: str
    stress: str
    rolling_mean: str  # legend entry for the bold lines, e.g. "7-day mean"
    mood: str
    sleep: str
    no_data: str  # shown in a panel with nothing to draw
    date_format: str  # a date tick, with {day} and {month}, e.g. "{day} {month}" → "3 Jun"
    month_names: tuple[str, ...]  # twelve short month names, January first

    def __post_init__(self) -> None:
        if len(self.month_names) != 12:
            raise ValueError(f"month_names needs 12 names, got {len(self.month_names)}")

    @classmethod
    def from_texts(cls, raw_text: Callable[[str], str], *, title: str) -> ChartLabels:
        """Labels from content: `raw_text` is a key's unformatted text (`Messages.raw`), so
        `charts.date_format` keeps its placeholders; `charts.months` is twelve names separated by
        spaces. HTML entities (`&amp;`) are decoded, since a chart is not an HTML message."""
        texts = {field: html.unescape(raw_text(key)) for field, key in LABEL_KEYS.items()}
        months = tuple(texts.pop("month_names").split())
        return cls(title=html.unescape(title), month_names=months, **texts)

    def format_day(self, day: date) -> str:
        """A date as a tick label, e.g. "3 Jun"."""
        return self.date_format.format(day=day.day, month=self.month_names[day.month - 1])


# ---------------------------------------------------------------- numbers


ROLLING_WINDOW: Final = 7
ROLLING_MIN_DAYS: Final = 3


def rolling_mean(
    values: Sequence[float | None],
    *,
    window: int = ROLLING_WINDOW,
    min_count: int = ROLLING_MIN_DAYS,
) -> list[float | None]:
    """Trailing mean of one value per consecutive day: entry i is the mean of the values present
    in days i-window+1 … i, or None when fewer than `min_count` of them are present."""
    means: list[float | None] = []
    for i in range(len(values)):
        present = [v for v in values[max(0, i - window + 1) : i + 1] if v is not None]
        means.append(sum(present) / len(present) if len(present) >= min_count else None)
    return means


def _daily(points: Sequence[DayPoint], first: date, count: int) -> list[DayPoint | None]:
    """One slot per day from `first`; days without a point are None (later points win)."""
    slots: list[DayPoint | None] = [None] * count
    for point in points:
        index = (point.day - first).days
        if 0 <= index < count:
            slots[index] = point
    return slots


def _nan(values: Sequence[float | None]) -> list[float]:
    """None → NaN, which matplotlib draws as a gap."""
    return [math.nan if v is None else float(v) for v in values]


# ---------------------------------------------------------------- style

# Okabe–Ito, safe for the common colour-vision deficiencies. The shapes and line styles differ
# too, so the chart still reads in greyscale.
PAIN_COLOUR: Final = "#D55E00"  # vermillion
STRESS_COLOUR: Final = "#0072B2"  # blue
MOOD_COLOUR: Final = "#009E73"  # bluish green
SLEEP_COLOUR: Final = "#E69F00"  # orange
TEXT_COLOUR: Final = "#222222"
MUTED_COLOUR: Final = "#555555"
GRID_COLOUR: Final = "#E3E3E3"

WIDTH_IN: Final = 7.2  # 7.2 × 9 in at 150 dpi = 1080 × 1350 px, Telegram's 4:5 portrait
HEIGHT_IN: Final = 9.0
DPI: Final = 150

TITLE_PT: Final = 21
HEADING_PT: Final = 17
TEXT_PT: Final = 15  # ticks and legends
NO_DATA_PT: Final = 16

# Vertical layout in inches, from the top.
_TOP_IN: Final = 0.32
_TITLE_IN: Final = 0.45
_HEADER_IN: Final = 0.82  # panel heading + legend, above each panel
_UPPER_IN: Final = 3.35
_GAP_IN: Final = 0.22
_LOWER_IN: Final = 2.55
_LEFT_IN: Final = 0.62
_RIGHT_IN: Final = 0.3


# ---------------------------------------------------------------- rendering


def render_trends(
    points: Sequence[DayPoint], labels: ChartLabels, *, days: int = 30, end: date
) -> bytes:
    """PNG of the `days` days ending at `end` (inclusive). Pass the points of the 6 days before
    too, if there are any: the first 7-day means use them."""
    return _png(build_figure(points, labels, days=days, end=end))


def render_week(points: Sequence[DayPoint], labels: ChartLabels, *, end: date) -> bytes:
    """PNG of the 7 days ending at `end`, for the weekly summary."""
    return render_trends(points, labels, days=7, end=end)


def build_figure(
    points: Sequence[DayPoint], labels: ChartLabels, *, days: int = 30, end: date
) -> Figure:
    """The chart as a matplotlib Figure with an Agg canvas, not yet saved (tests inspect it)."""
    if days < 1:
        raise ValueError(f"days must be at least 1, got {days}")
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    history = ROLLING_WINDOW - 1
    first = end - timedelta(days=days - 1)
    slots = _daily(points, first - timedelta(days=history), days + history)
    shown = slots[history:]

    fig = Figure(figsize=(WIDTH_IN, HEIGHT_IN), dpi=DPI, facecolor="white")
    FigureCanvasAgg(fig)

    def rect(top_in: float, height_in: float) -> tuple[float, float, float, float]:
        return (
            _LEFT_IN / WIDTH_IN,
            1 - (top_in + height_in) / HEIGHT_IN,
            1 - (_LEFT_IN + _RIGHT_IN) / WIDTH_IN,
            height_in / HEIGHT_IN,
        )

    upper_top = _TOP_IN + _TITLE_IN + _HEADER_IN
    lower_top = upper_top + _UPPER_IN + _GAP_IN + _HEADER_IN
    upper = fig.add_axes(rect(upper_top, _UPPER_IN))
    lower = fig.add_axes(rect(lower_top, _LOWER_IN), sharex=upper)

    fig.text(
        _LEFT_IN / WIDTH_IN * 0.35,
        1 - _TOP_IN / HEIGHT_IN,
        labels.title,
        fontsize=TITLE_PT,
        fontweight="bold",
        color=TEXT_COLOUR,
        ha="left",
        va="top",
        parse_math=False,
    )

    _draw_pain_stress(upper, slots, history, labels)
    _draw_mood_sleep(lower, shown, labels)

    for ax in (upper, lower):
        _style_axes(ax)
    upper.set_xlim(-0.6, days - 0.4)
    step = max(1, math.ceil(days / 7))
    ticks = list(range(days - 1, -1, -step))[::-1]  # the last day always has a label
    lower.set_xticks(ticks, [labels.format_day(first + timedelta(days=i)) for i in ticks])
    upper.tick_params(axis="x", labelbottom=False)
    for text in lower.get_xticklabels():
        text.set_parse_math(False)
    return fig


def _draw_pain_stress(
    ax: Axes, slots: Sequence[DayPoint | None], history: int, labels: ChartLabels
) -> None:
    from matplotlib.lines import Line2D

    days = len(slots) - history
    x = list(range(days))
    pain = [s.pain if s else None for s in slots]
    stress = [s.stress if s else None for s in slots]
    series = (
        (pain, labels.pain, PAIN_COLOUR, "o", "-"),
        (stress, labels.stress, STRESS_COLOUR, "s", (0, (4, 1.6))),
    )
    handles: list[Line2D] = []
    for values, name, colour, marker, style in series:
        daily = values[history:]
        ax.plot(
            x,
            _nan(daily),
            color=colour,
            linewidth=1.6,
            linestyle=style,
            alpha=0.55,
            marker=marker,
            markersize=6.5,
            markeredgewidth=0,
            zorder=2,
        )
        ax.plot(
            x,
            _nan(rolling_mean(values)[history:]),
            color=colour,
            linewidth=4.5,
            linestyle=style,
            solid_capstyle="round",
            dash_capstyle="round",
            zorder=3,
        )
        handles.append(
            Line2D(
                [],
                [],
                color=colour,
                linewidth=2.2,
                linestyle=style,
                marker=marker,
                markersize=8,
                markeredgewidth=0,
                label=name,
            )  # fmt: skip
        )
    handles.append(
        Line2D(
            [],
            [],
            color=MUTED_COLOUR,
            linewidth=4.5,
            solid_capstyle="round",
            label=labels.rolling_mean,
        )  # fmt: skip
    )
    ax.set_ylim(-0.4, 10.4)
    ax.set_yticks([0, 2, 4, 6, 8, 10])
    has_data = any(v is not None for v in pain[history:] + stress[history:])
    _header(ax, labels.pain_stress_axis, handles, _UPPER_IN, None if has_data else labels.no_data)


def _draw_mood_sleep(ax: Axes, shown: Sequence[DayPoint | None], labels: ChartLabels) -> None:
    from matplotlib.lines import Line2D
    from matplotlib.transforms import offset_copy

    x = list(range(len(shown)))
    mood = [s.mood if s else None for s in shown]
    sleep = [s.sleep if s else None for s in shown]
    series = (
        (mood, labels.mood, MOOD_COLOUR, "o", -4.0),
        (sleep, labels.sleep, SLEEP_COLOUR, "^", 4.0),
    )
    handles: list[Line2D] = []
    for values, name, colour, marker, shift_pt in series:
        # Side by side within the day, so equal scores do not hide each other.
        shifted = offset_copy(ax.transData, fig=ax.figure, x=shift_pt, units="points")
        ax.plot(
            x,
            _nan(values),
            linestyle="none",
            marker=marker,
            markersize=11,
            color=colour,
            markeredgecolor="white",
            markeredgewidth=1.2,
            transform=shifted,
            zorder=3,
        )
        handles.append(
            Line2D(
                [],
                [],
                linestyle="none",
                marker=marker,
                markersize=12,
                color=colour,
                markeredgecolor="white",
                markeredgewidth=1.2,
                label=name,
            )  # fmt: skip
        )
    ax.set_ylim(0.5, 5.5)
    ax.set_yticks([1, 2, 3, 4, 5])
    has_data = any(v is not None for v in mood + sleep)
    _header(ax, labels.mood_sleep_axis, handles, _LOWER_IN, None if has_data else labels.no_data)


def _header(
    ax: Axes, heading: str, handles: Sequence[Any], height_in: float, no_data: str | None
) -> None:
    """The panel's heading and legend above it; the no-data text inside when it is empty."""
    ax.annotate(
        heading,
        xy=(0, 1),
        xycoords="axes fraction",
        xytext=(-_LEFT_IN * 72 * 0.65, _HEADER_IN * 72 - 4),
        textcoords="offset points",
        ha="left",
        va="top",
        fontsize=HEADING_PT,
        fontweight="bold",
        color=TEXT_COLOUR,
        annotation_clip=False,
        parse_math=False,
    )
    legend = ax.legend(
        handles=handles,
        loc="lower left",
        bbox_to_anchor=(-_LEFT_IN / (WIDTH_IN - _LEFT_IN - _RIGHT_IN) * 0.65, 1.0),
        ncol=len(handles),
        frameon=False,
        fontsize=TEXT_PT,
        labelcolor=TEXT_COLOUR,
        borderaxespad=0.15,
        borderpad=0,
        handlelength=1.9,
        handletextpad=0.5,
        columnspacing=1.2,
    )
    for text in legend.get_texts():
        text.set_parse_math(False)
    if no_data is not None:
        ax.text(
            0.5,
            0.5,
            no_data,
            transform=ax.transAxes,
            ha="center",
            va="center",
            fontsize=NO_DATA_PT,
            color=MUTED_COLOUR,
            wrap=True,
            parse_math=False,
        )


def _style_axes(ax: Axes) -> None:
    ax.set_facecolor("white")
    for side in ("top", "right", "left"):
        ax.spines[side].set_visible(False)
    ax.spines["bottom"].set_color("#999999")
    ax.grid(True, axis="both", color=GRID_COLOUR, linewidth=1.0)
    ax.set_axisbelow(True)
    ax.tick_params(
        axis="both", labelsize=TEXT_PT, colors=MUTED_COLOUR, length=0, pad=6, labelcolor=TEXT_COLOUR
    )
    ax.tick_params(axis="x", length=5, color="#999999")


def _png(fig: Figure) -> bytes:
    buffer = io.BytesIO()
    try:
        fig.savefig(buffer, format="png", dpi=DPI, facecolor="white")
    finally:
        fig.clear()  # break the figure's reference cycles now, not at the next GC pass
    return buffer.getvalue()
