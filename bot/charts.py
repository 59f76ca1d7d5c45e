"""Check-in trend charts as PNG images, drawn for a phone screen.

Two stacked panels share one date axis: pain and stress (0–10) as thin daily lines with bold
7-day rolling means, and mood and sleep (1–5) as marks. Every word drawn comes from the caller
in a `ChartLabels`, which it builds from `content/messages.yml` (`charts.*`).

Matplotlib is imported only when a chart is first drawn, so importing this module at start-up
costs nothing; `warm_up()` pays the first chart's extra second ahead of time. Figures use the
object-oriented API with the Agg canvas: no pyplot, no global state or rcParams changes,
nothing registered that would keep a figure alive after its PNG is written. Each call builds
its own figure, so charts can be drawn in worker threads (`asyncio.to_thread`); a render is
CPU-bound, so it should not run on the event loop.
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import TYPE_CHECKING, Any, Final, Literal

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


@dataclass(frozen=True, slots=True)
class ChartLabels:
    """Every text a chart draws, as plain text (no HTML), from content/messages.yml `charts.*`
    (see `bot.views.chart_labels`). Text is drawn as it is: `$` is not TeX here."""

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
    month_names: tuple[str, ...]  # twelve short month names, January first (charts.month_names)

    def __post_init__(self) -> None:
        if len(self.month_names) != 12:
            raise ValueError(f"month_names needs 12 names, got {len(self.month_names)}")

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
AXIS_COLOUR: Final = "#999999"
LABEL_PAD_PT: Final = 6

WIDTH_IN: Final = 7.2  # 7.2 × 9 in at 150 dpi = 1080 × 1350 px, Telegram's 4:5 portrait
HEIGHT_IN: Final = 9.0
DPI: Final = 150
PNG_COLOURS: Final = 128
PNG_COMPRESS_LEVEL: Final = 3

TITLE_PT: Final = 22
HEADING_PT: Final = 18
TEXT_PT: Final = 16  # value and date labels, legends
NO_DATA_PT: Final = 17
MAX_DATE_TICKS: Final = 6  # "14 May" labels that fit side by side on the date axis
DAILY_GRID_MAX_DAYS: Final = 14

# Pain solid, stress dashed: the two lines differ in greyscale too.
_LineStyle = Literal["-"] | tuple[float, tuple[float, float]]
PAIN_STYLE: Final[_LineStyle] = "-"
STRESS_STYLE: Final[_LineStyle] = (0, (4, 1.6))

# Vertical layout in inches, from the top.
_TOP_IN: Final = 0.32
_TITLE_IN: Final = 0.45
_HEADER_IN: Final = 0.78  # panel heading + legend, above each panel
_UPPER_IN: Final = 3.35
_GAP_IN: Final = 0.22
_LOWER_IN: Final = 2.6
_LEFT_IN: Final = 0.62  # room for the value ticks
_INDENT_IN: Final = 0.22  # where the title and panel headings start
_RIGHT_IN: Final = 0.45


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
    """The chart as a matplotlib Figure with an Agg canvas, not yet saved (tests inspect it).
    The data lines have gids: pain-daily, pain-mean, stress-daily, stress-mean, mood, sleep."""
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
    lower = fig.add_axes(rect(lower_top, _LOWER_IN))

    fig.text(
        _INDENT_IN / WIDTH_IN,
        1 - _TOP_IN / HEIGHT_IN,
        labels.title,
        fontsize=TITLE_PT,
        fontweight="bold",
        color=TEXT_COLOUR,
        ha="left",
        va="top",
        parse_math=False,
    )

    step = max(1, math.ceil(days / MAX_DATE_TICKS))
    dated = list(range(days - 1, -1, -step))[::-1]  # the last day always has a label
    # A grid line for every day of a short chart, at the labelled days of a long one.
    grid_days = range(days) if days <= DAILY_GRID_MAX_DAYS else dated
    _frame(fig, upper, days=days, values=(0, 2, 4, 6, 8, 10), padding=0.4, grid_days=grid_days)
    _frame(fig, lower, days=days, values=(1, 2, 3, 4, 5), padding=0.5, grid_days=grid_days)
    _date_labels(fig, lower, {i: labels.format_day(first + timedelta(days=i)) for i in dated})

    _draw_pain_stress(upper, slots, history, labels)
    _draw_mood_sleep(fig, lower, shown, labels)
    return fig


def _draw_pain_stress(
    ax: Axes, slots: Sequence[DayPoint | None], history: int, labels: ChartLabels
) -> None:
    from matplotlib.lines import Line2D

    days = len(slots) - history
    x = list(range(days))
    pain = [s.pain if s else None for s in slots]
    stress = [s.stress if s else None for s in slots]
    series: tuple[tuple[str, list[float | None], str, str, str, _LineStyle], ...] = (
        ("pain", pain, labels.pain, PAIN_COLOUR, "o", PAIN_STYLE),
        ("stress", stress, labels.stress, STRESS_COLOUR, "s", STRESS_STYLE),
    )
    handles: list[Line2D] = []
    for key, values, name, colour, marker, style in series:
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
            gid=f"{key}-daily",
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
            gid=f"{key}-mean",
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
            )
        )
    handles.append(
        Line2D(
            [],
            [],
            color=MUTED_COLOUR,
            linewidth=4.5,
            solid_capstyle="round",
            label=labels.rolling_mean,
        )
    )
    has_data = any(v is not None for v in pain[history:] + stress[history:])
    no_data = None if has_data else labels.no_data
    _header(ax, labels.pain_stress_axis, handles, no_data, handle_length=1.9)


def _draw_mood_sleep(
    fig: Figure, ax: Axes, shown: Sequence[DayPoint | None], labels: ChartLabels
) -> None:
    from matplotlib.lines import Line2D
    from matplotlib.transforms import offset_copy

    x = list(range(len(shown)))
    mood = [s.mood if s else None for s in shown]
    sleep = [s.sleep if s else None for s in shown]
    series = (
        ("mood", mood, labels.mood, MOOD_COLOUR, "o", -4.0),
        ("sleep", sleep, labels.sleep, SLEEP_COLOUR, "^", 4.0),
    )
    handles: list[Line2D] = []
    for key, values, name, colour, marker, shift_pt in series:
        # Side by side within the day, so equal scores do not hide each other.
        shifted = offset_copy(ax.transData, fig=fig, x=shift_pt, units="points")
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
            gid=key,
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
            )
        )
    has_data = any(v is not None for v in mood + sleep)
    no_data = None if has_data else labels.no_data
    _header(ax, labels.mood_sleep_axis, handles, no_data, handle_length=0.9)


def _header(
    ax: Axes, heading: str, handles: Sequence[Any], no_data: str | None, *, handle_length: float
) -> None:
    """The panel's heading and legend above it; the no-data text inside when it is empty."""
    ax.annotate(
        heading,
        xy=(0, 1),
        xycoords="axes fraction",
        xytext=((_INDENT_IN - _LEFT_IN) * 72, _HEADER_IN * 72 - 4),
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
        bbox_to_anchor=((_INDENT_IN - _LEFT_IN) / (WIDTH_IN - _LEFT_IN - _RIGHT_IN), 1.0),
        ncol=len(handles),
        frameon=False,
        fontsize=TEXT_PT,
        labelcolor=TEXT_COLOUR,
        borderaxespad=0.15,
        borderpad=0,
        handlelength=handle_length,
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
            bbox={"facecolor": "white", "edgecolor": "none", "pad": 8},
            zorder=5,
        )


def _frame(
    fig: Figure,
    ax: Axes,
    *,
    days: int,
    values: Sequence[int],
    padding: float,
    grid_days: Sequence[int],
) -> None:
    """Limits, light grid, value labels and a base line, drawn as a few plain artists: a
    matplotlib tick costs about a millisecond to make and draw, and the chart would need 25."""
    from matplotlib.transforms import offset_copy

    ax.set_xlim(-0.6, days - 0.4)
    ax.set_ylim(values[0] - padding, values[-1] + padding)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_facecolor("white")
    for side in ("top", "right", "left"):
        ax.spines[side].set_visible(False)
    ax.spines["bottom"].set_color(AXIS_COLOUR)
    across, along = ax.get_yaxis_transform(), ax.get_xaxis_transform()
    ax.hlines(values, 0, 1, transform=across, colors=GRID_COLOUR, linewidth=1.0, zorder=0)
    ax.vlines(grid_days, 0, 1, transform=along, colors=GRID_COLOUR, linewidth=1.0, zorder=0)
    beside = offset_copy(across, fig=fig, x=-LABEL_PAD_PT, units="points")
    for value in values:
        ax.text(
            0,
            value,
            str(value),
            transform=beside,
            ha="right",
            va="center_baseline",
            fontsize=TEXT_PT,
            color=TEXT_COLOUR,
        )


def _date_labels(fig: Figure, ax: Axes, labels: Mapping[int, str]) -> None:
    """Dates under the axis, each with a short tick mark."""
    from matplotlib.lines import Line2D
    from matplotlib.transforms import offset_copy

    along = ax.get_xaxis_transform()  # x in days, y in axes fractions
    ax.add_line(
        Line2D(
            list(labels),
            [0] * len(labels),
            transform=along,
            linestyle="none",
            marker=3,  # TICKDOWN
            markersize=6,
            markeredgewidth=1.0,
            markeredgecolor=AXIS_COLOUR,
            clip_on=False,
        )
    )
    below = offset_copy(along, fig=fig, y=-(LABEL_PAD_PT + 5), units="points")
    for day, text in labels.items():
        ax.text(
            day,
            0,
            text,
            transform=below,
            ha="center",
            va="top",
            fontsize=TEXT_PT,
            color=TEXT_COLOUR,
            parse_math=False,
        )


def _png(fig: Figure) -> bytes:
    """The figure as a PNG with a 128-colour palette. Drawn and encoded here rather than by
    `savefig(format="png")`, whose RGBA at zlib level 6 takes three times as long to encode as a
    palette image and is twice the size; the chart has a dozen colours and their anti-aliased
    edges, so nothing visible is lost (Telegram recompresses photos anyway)."""
    from PIL import Image

    canvas: Any = fig.canvas  # FigureCanvasAgg, whose methods have no type hints
    canvas.draw()
    size = canvas.get_width_height(physical=True)
    image = Image.frombuffer("RGBA", size, canvas.buffer_rgba(), "raw", "RGBA", 0, 1)
    palette = image.convert("RGB").quantize(PNG_COLOURS, method=Image.Quantize.FASTOCTREE)
    png = io.BytesIO()
    palette.save(png, format="png", compress_level=PNG_COMPRESS_LEVEL)
    # No fig.clear(): it rebuilds every axis (a fifth of the render time). Nothing outside
    # this call refers to the figure, so the garbage collector frees it with its canvas.
    return png.getvalue()


def warm_up() -> None:
    """Import matplotlib and Pillow, load the fonts and draw one blank chart, which the first
    real chart would otherwise wait for (a second or more). Call it once at start-up, off the
    event loop (e.g. `asyncio.to_thread(charts.warm_up)`)."""
    blank = ChartLabels("", "", "", "", "", "", "", "", "", "{day}", ("",) * 12)
    render_trends([], blank, end=date(2000, 1, 1))
