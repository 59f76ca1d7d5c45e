"""Messages with their keyboards, shared by handlers and the delivery engine."""

from __future__ import annotations

from dataclasses import dataclass

from telegram import InlineKeyboardMarkup, ReplyKeyboardMarkup

from bot.charts import ChartLabels
from bot.content import Content, Tip, render_tip
from bot.keyboards import button, keyboard


@dataclass(frozen=True, slots=True)
class View:
    """A message ready to send: HTML text and an optional inline keyboard."""

    text: str
    markup: InlineKeyboardMarkup | ReplyKeyboardMarkup | None = None
    photo: bytes | None = None


def tip_markup(content: Content, tip: Tip, *, feedback: bool = True) -> InlineKeyboardMarkup:
    """Helpful / Not for me (until answered), then Another tip / More on this topic."""
    topic = content.topics[tip.topic_id]
    feedback_row = [
        button(content.text("buttons.helpful"), "fb", "h", tip.id),
        button(content.text("buttons.not_for_me"), "fb", "n", tip.id),
    ]
    navigation = [
        button(content.text("buttons.another_tip"), "tip", "any"),
        button(content.text("buttons.more_on", topic=topic.title), "tip", topic.id),
    ]
    return keyboard([feedback_row if feedback else [], navigation])


def tip_view(content: Content, tip: Tip) -> View:
    """A tip with its feedback and navigation buttons."""
    return View(render_tip(content, tip), tip_markup(content, tip))


def chart_labels(content: Content, *, week: bool = False) -> ChartLabels:
    """Every word a chart draws, from content/."""
    return ChartLabels(
        title=content.text("charts.week_title" if week else "charts.title"),
        pain_stress_axis=content.text("charts.pain_stress_axis"),
        mood_sleep_axis=content.text("charts.mood_sleep_axis"),
        pain=content.text("charts.pain"),
        stress=content.text("charts.stress"),
        rolling_mean=content.text("charts.rolling_mean"),
        mood=content.text("charts.mood"),
        sleep=content.text("charts.sleep"),
        no_data=content.text("charts.no_data"),
        date_format=content.messages.raw("charts.date_format"),
        month_names=tuple(content.text("charts.month_names").split()),
    )


def reminder_view(content: Content) -> View:
    """The check-in reminder with Check in now, Snooze 1 h, Snooze 3 h and Skip today."""
    return View(
        content.text("reminder.text"),
        keyboard(
            [
                [button(content.text("buttons.checkin_now"), "ck", "nav", "start")],
                [
                    button(content.text("buttons.snooze_1h"), "rem", "60"),
                    button(content.text("buttons.snooze_3h"), "rem", "180"),
                ],
                [button(content.text("buttons.skip_today"), "rem", "skip")],
            ]
        ),
    )
