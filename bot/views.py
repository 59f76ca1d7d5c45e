"""Messages with their keyboards, shared by handlers and the delivery engine."""

from __future__ import annotations

from dataclasses import dataclass

from telegram import InlineKeyboardMarkup, ReplyKeyboardMarkup

from bot.content import Content, Tip, render_tip
from bot.keyboards import button, keyboard


@dataclass(frozen=True, slots=True)
class View:
    """A message ready to send: HTML text and an optional inline keyboard."""

    text: str
    markup: InlineKeyboardMarkup | ReplyKeyboardMarkup | None = None


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
