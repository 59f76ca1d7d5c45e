"""Daily tips: /subscribe, /unsubscribe, /timezone, /time, /pause, /resume, /settings, /tip."""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, time, timedelta
from html import escape
from zoneinfo import ZoneInfo

from telegram import (
    CallbackQuery,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    KeyboardButton,
    ReplyKeyboardMarkup,
    ReplyKeyboardRemove,
    Update,
)
from telegram.error import BadRequest

from bot.content import Content
from bot.db.engine import unit_of_work
from bot.db.models import Feedback
from bot.handlers.common import Context, reply, runtime, visit, visit_id
from bot.keyboards import Callback, button, decode, keyboard
from bot.runtime import Runtime
from bot.services import subscriptions, tip_history
from bot.services.subscriptions import DailySettings
from bot.services.times import format_time, parse_time_of_day
from bot.services.zones import ZoneChoice, known_zones
from bot.views import View, tip_markup, tip_view

logger = logging.getLogger(__name__)

BUTTON_PATTERN = r"^(tz|tm|sub|set|focus|fb|tip)(:|$)"
TIME_CHOICES = (time(7), time(8), time(9), time(12), time(18), time(21))
REMINDER_CHOICES = (time(8), time(12), time(17), time(19), time(20), time(21))
SUGGESTED_TIME = subscriptions.DEFAULT_TIP_TIME


# ---------------------------------------------------------------- wording helpers


def zone_name(key: str) -> str:
    """A short name for a zone: "Berlin", "New York", "UTC+02:00"."""
    if key.startswith("Etc/GMT") and key[7:8] in ("+", "-"):
        hours = -int(key[7:])
        return f"UTC{'+' if hours >= 0 else '-'}{abs(hours):02d}:00"
    return key.rsplit("/", 1)[-1].replace("_", " ")


def when(content: Content, moment: datetime, key: str, now: datetime) -> str:
    """ "tomorrow at 08:30 (Berlin time)" for a UTC moment, in the user's zone."""
    zone = ZoneInfo(key)
    local, today = moment.astimezone(zone), now.astimezone(zone).date()
    values = {"time": local.strftime("%H:%M"), "zone": zone_name(key)}
    if local.date() == today:
        return content.text("daily.next_today", **values)
    if local.date() == today + timedelta(days=1):
        return content.text("daily.next_tomorrow", **values)
    return content.text("daily.next_date", date=local.strftime("%A %-d %B"), **values)


def local_date_label(moment: datetime, key: str) -> str:
    return moment.astimezone(ZoneInfo(key)).strftime("%A %-d %B")


def time_keyboard(
    content: Content, action: str, prefix: str = "", choices: tuple[time, ...] | None = None
) -> list[list[InlineKeyboardButton]]:
    """Rows of time buttons; the suggested tip time is marked."""
    buttons = [
        button(
            content.text(
                "buttons.time_suggested"
                if choices is None and at == SUGGESTED_TIME
                else "buttons.time_option",
                time=format_time(at),
            ),
            action,
            prefix + at.strftime("%H%M"),
        )
        for at in choices or TIME_CHOICES
    ]
    return [buttons[:3], buttons[3:]]


def location_keyboard(content: Content) -> ReplyKeyboardMarkup:
    return ReplyKeyboardMarkup(
        [[KeyboardButton(content.text("buttons.share_location"), request_location=True)]],
        one_time_keyboard=True,
        resize_keyboard=True,
    )


# ---------------------------------------------------------------- subscribing


async def _subscribe_view(rt: Runtime, user_id: int) -> View:
    content, now = rt.content, rt.clock.now()
    async with unit_of_work(rt.sessions) as session:
        current = await subscriptions.load(session, user_id)
        if current.timezone is None:
            return View(content.text("daily.need_zone"), location_keyboard(content))
        if current.subscribed and current.next_run_at is not None:
            return View(
                content.text(
                    "daily.already", next=when(content, current.next_run_at, current.timezone, now)
                )
            )
        if current.tip_time is None:
            return View(content.text("daily.pick_time"), keyboard(time_keyboard(content, "tm")))
        current = await subscriptions.subscribe(session, user_id, now)
    return _subscribed_view(content, current, now)


def _subscribed_view(content: Content, current: DailySettings, now: datetime) -> View:
    assert current.timezone is not None
    if current.next_run_at is None:
        return View(content.text("daily.not_subscribed"))
    return View(
        content.text(
            "daily.subscribed", next=when(content, current.next_run_at, current.timezone, now)
        )
    )


async def subscribe(update: Update, context: Context) -> None:
    """/subscribe: start daily tips, asking for the time zone and time first if missing."""
    rt = runtime(context)
    user_id = await visit_id(rt, update)
    if user_id is None:
        return
    view = await _subscribe_view(rt, user_id)
    await reply(update, view.text, reply_markup=view.markup)


async def unsubscribe(update: Update, context: Context) -> None:
    """/unsubscribe: stop daily tips and say how to come back."""
    rt = runtime(context)
    user_id = await visit_id(rt, update)
    if user_id is None:
        return
    async with unit_of_work(rt.sessions) as session:
        stopped = await subscriptions.unsubscribe(session, user_id)
    await reply(
        update, rt.content.text("daily.unsubscribed" if stopped else "daily.not_subscribed")
    )


# ---------------------------------------------------------------- time zone


async def timezone(update: Update, context: Context) -> None:
    """/timezone [place]: set the zone from a city, country, IANA name or UTC offset."""
    rt = runtime(context)
    user_id = await visit_id(rt, update)
    if user_id is None:
        return
    query = " ".join(context.args or []).strip()
    content = rt.content
    if not query:
        await reply(update, content.text("daily.zone_ask"), reply_markup=location_keyboard(content))
        return
    found = rt.zones.lookup(query)
    if found.zone is not None:
        await _apply_zone(update, context, user_id, found.zone.key)
    elif found.suggestions:
        await reply(
            update,
            content.text("daily.zone_suggestions", query=escape(query[:60])),
            reply_markup=_zone_buttons(found.suggestions),
        )
    else:
        await reply(update, content.text("daily.zone_unknown", query=escape(query[:60])))


def _zone_buttons(choices: tuple[ZoneChoice, ...]) -> InlineKeyboardMarkup:
    return keyboard([[button(choice.label[:60], "tz", choice.key)] for choice in choices])


async def location(update: Update, context: Context) -> None:
    """A shared location becomes a time zone; the location itself is not stored."""
    rt = runtime(context)
    message = update.effective_message
    user_id = await visit_id(rt, update)
    if user_id is None or message is None or message.location is None:
        return
    # The first lookup builds timezonefinder's index: keep it off the event loop.
    choice = await asyncio.to_thread(
        rt.zones.from_location, message.location.latitude, message.location.longitude
    )
    if choice is None:
        await reply(
            update,
            rt.content.text("daily.zone_location_unknown"),
            reply_markup=ReplyKeyboardRemove(),
        )
        return
    await _apply_zone(update, context, user_id, choice.key)


async def _apply_zone(update: Update, context: Context, user_id: int, key: str) -> None:
    rt = runtime(context)
    content, now = rt.content, rt.clock.now()
    async with unit_of_work(rt.sessions) as session:
        current = await subscriptions.set_timezone(session, user_id, key, now)
    local_time = now.astimezone(ZoneInfo(key)).strftime("%H:%M")
    if current.subscribed and current.next_run_at is not None:
        text = content.text(
            "daily.zone_set_next",
            zone=escape(key),
            local_time=local_time,
            next=when(content, current.next_run_at, key, now),
        )
        await reply(update, text, reply_markup=ReplyKeyboardRemove())
        return
    await reply(
        update,
        content.text("daily.zone_set", zone=escape(key), local_time=local_time),
        reply_markup=ReplyKeyboardRemove(),
    )
    view = await _subscribe_view(rt, user_id)
    await reply(update, view.text, reply_markup=view.markup)


# ---------------------------------------------------------------- time of day


async def tip_time(update: Update, context: Context) -> None:
    """/time HH:MM: set the local time of the daily tip."""
    rt = runtime(context)
    user_id = await visit_id(rt, update)
    if user_id is None:
        return
    content, now = rt.content, rt.clock.now()
    query = " ".join(context.args or []).strip()
    if not query:
        await reply(
            update,
            content.text("daily.pick_time"),
            reply_markup=keyboard(time_keyboard(content, "tm")),
        )
        return
    at = parse_time_of_day(query)
    if at is None:
        await reply(update, content.text("daily.time_invalid", query=escape(query[:40])))
        return
    async with unit_of_work(rt.sessions) as session:
        current = await subscriptions.set_tip_time(session, user_id, at, now)
    shown = format_time(at)
    if current.subscribed and current.next_run_at is not None and current.timezone:
        text = content.text(
            "daily.time_set_next",
            time=shown,
            next=when(content, current.next_run_at, current.timezone, now),
        )
        await reply(update, text)
    elif current.timezone:
        await reply(
            update,
            content.text("daily.time_set_offer", time=shown),
            reply_markup=keyboard([[button(content.text("buttons.subscribe"), "sub")]]),
        )
    else:
        await reply(update, content.text("daily.time_set", time=shown))
        await reply(
            update, content.text("daily.need_zone"), reply_markup=location_keyboard(content)
        )


# ---------------------------------------------------------------- pause and resume


async def pause(update: Update, context: Context) -> None:
    """/pause [days]: no tips for a while (7 days unless told otherwise, at most 90)."""
    rt = runtime(context)
    user_id = await visit_id(rt, update)
    if user_id is None:
        return
    content, now = rt.content, rt.clock.now()
    args = context.args or []
    days = subscriptions.DEFAULT_PAUSE_DAYS
    if args:
        if (
            len(args) > 1
            or not args[0].isdecimal()
            or not 1 <= int(args[0]) <= subscriptions.MAX_PAUSE_DAYS
        ):
            await reply(update, content.text("daily.pause_invalid"))
            return
        days = int(args[0])
    async with unit_of_work(rt.sessions) as session:
        current = await subscriptions.load(session, user_id)
        if not current.subscribed or current.timezone is None:
            await reply(update, content.text("daily.not_subscribed"))
            return
        current = await subscriptions.pause(session, user_id, days, now)
    assert current.paused_until is not None
    assert current.timezone is not None
    await reply(
        update,
        content.text(
            "daily.paused", until=local_date_label(current.paused_until, current.timezone)
        ),
    )


async def resume(update: Update, context: Context) -> None:
    """/resume: end a pause now."""
    rt = runtime(context)
    user_id = await visit_id(rt, update)
    if user_id is None:
        return
    content, now = rt.content, rt.clock.now()
    async with unit_of_work(rt.sessions) as session:
        current = await subscriptions.load(session, user_id)
        if not current.subscribed or current.timezone is None:
            await reply(update, content.text("daily.not_subscribed"))
            return
        was_paused = current.paused_until is not None and current.paused_until > now
        current = await subscriptions.resume(session, user_id, now)
    assert current.next_run_at is not None
    assert current.timezone is not None
    key = "daily.resumed" if was_paused else "daily.not_paused"
    await reply(
        update, content.text(key, next=when(content, current.next_run_at, current.timezone, now))
    )


# ---------------------------------------------------------------- settings


def settings_view(content: Content, current: DailySettings, now: datetime) -> View:
    """The /settings message: every option, each with a button that changes it in place."""
    not_set = content.text("settings.not_set")
    if not current.subscribed:
        status = content.text("settings.status_off")
    elif current.paused_until is not None and current.paused_until > now and current.timezone:
        status = content.text(
            "settings.status_paused", until=local_date_label(current.paused_until, current.timezone)
        )
    elif current.next_run_at is not None and current.timezone:
        status = content.text(
            "settings.status_on", next=when(content, current.next_run_at, current.timezone, now)
        )
    else:
        status = content.text("settings.status_off")
    focus = ", ".join(
        escape(content.topics[t].title) for t in current.focus_topics if t in content.topics
    ) or content.text("settings.focus_none")
    if current.weekly_summary is None:
        weekly = content.text("settings.weekly_later")
    else:
        weekly = content.text(
            "settings.weekly_on" if current.weekly_summary else "settings.weekly_off"
        )
    reminder = (
        content.text("settings.reminder_on", time=format_time(current.reminder_time))
        if current.reminder_time
        else content.text("settings.reminder_off")
    )
    text = content.text(
        "settings.text",
        zone=escape(current.timezone) if current.timezone else not_set,
        time=format_time(current.tip_time) if current.tip_time else not_set,
        status=status,
        focus=focus,
        weekly=weekly,
        reminder=reminder,
        country=_country_label(content, current.country),
    )
    paused = current.paused_until is not None and current.paused_until > now
    rows = [
        [
            button(content.text("buttons.change_zone"), "set", "zone"),
            button(content.text("buttons.change_time"), "set", "time"),
        ],
        [
            button(content.text("buttons.resume"), "set", "resume")
            if paused
            else button(content.text("buttons.pause_week"), "set", "pause")
        ]
        if current.subscribed
        else [],
        [
            button(content.text("buttons.turn_off"), "set", "off")
            if current.subscribed
            else button(content.text("buttons.turn_on"), "set", "on")
        ],
        [button(content.text("buttons.focus"), "set", "focus")],
        [
            button(
                content.text(
                    "buttons.weekly_on" if current.weekly_summary else "buttons.weekly_off"
                ),
                "set",
                "weekly",
            )
        ],
        [
            button(
                content.text("buttons.reminder_on", time=format_time(current.reminder_time))
                if current.reminder_time
                else content.text("buttons.reminder_off"),
                "set",
                "rem",
            ),
            *(
                [button(content.text("buttons.reminder_time"), "set", "rtime")]
                if current.reminder_time
                else []
            ),
        ],
        [button(content.text("buttons.crisis_country"), "set", "country")],
    ]
    return View(text, keyboard(rows))


def _country_label(content: Content, country: str | None) -> str:
    if country and country in content.safety.country_names:
        return escape(content.safety.country_names[country])
    return content.text("settings.country_auto")


def country_view(content: Content) -> View:
    """Choose the country whose crisis lines come first."""
    names = sorted(content.safety.country_names.items(), key=lambda item: item[1])
    rows = [
        [button(name, "set", "c" + code) for code, name in names[start : start + 3]]
        for start in range(0, len(names), 3)
    ]
    rows.append([button(content.text("buttons.country_auto"), "set", "cauto")])
    rows.append([button(content.text("buttons.back"), "set", "main")])
    return View(content.text("settings.country_pick"), keyboard(rows))


def focus_view(content: Content, focus: tuple[str, ...]) -> View:
    rows = []
    topics = list(content.topics.values())
    for start in range(0, len(topics), 2):
        rows.append(
            [
                button(
                    content.text(
                        "buttons.focus_on" if topic.id in focus else "buttons.focus_off",
                        topic=topic.label,
                    ),
                    "focus",
                    topic.id,
                )
                for topic in topics[start : start + 2]
            ]
        )
    rows.append([button(content.text("buttons.back"), "set", "main")])
    return View(content.text("settings.focus_pick"), keyboard(rows))


async def settings_command(update: Update, context: Context) -> None:
    """/settings: zone, time, status and focus topics, each changeable with a button."""
    rt = runtime(context)
    user_id = await visit_id(rt, update)
    if user_id is None:
        return
    async with unit_of_work(rt.sessions) as session:
        current = await subscriptions.load(session, user_id)
    view = settings_view(rt.content, current, rt.clock.now())
    await reply(update, view.text, reply_markup=view.markup)


async def edit(query: CallbackQuery, view: View) -> None:
    """Show `view` in the pressed message; an unchanged message is fine, and a message that
    cannot be edited (deleted, or a document) gets the view as a new message instead."""
    markup = view.markup if isinstance(view.markup, InlineKeyboardMarkup) else None
    message = query.message
    if message is not None and not getattr(message, "text", None):  # a photo or document
        await query.get_bot().send_message(message.chat.id, view.text, reply_markup=markup)
        return
    try:
        await query.edit_message_text(view.text, reply_markup=markup)
    except BadRequest as exc:
        if "not modified" in str(exc):
            return
        if query.message is None:
            raise
        await query.get_bot().send_message(query.message.chat.id, view.text, reply_markup=markup)


async def _settings_action(rt: Runtime, user_id: int, what: str) -> View | None:
    content, now = rt.content, rt.clock.now()
    back = keyboard([[button(content.text("buttons.back"), "set", "main")]])
    async with unit_of_work(rt.sessions) as session:
        current = await subscriptions.load(session, user_id)
        if what == "zone":
            return View(content.text("settings.zone_help"), back)
        if what == "time":
            rows = time_keyboard(content, "set", "t")
            rows.append([button(content.text("buttons.back"), "set", "main")])
            return View(content.text("settings.time_pick"), keyboard(rows))
        if what == "focus":
            return focus_view(content, current.focus_topics)
        if what == "country":
            return country_view(content)
        if what == "cauto" or (what[1:] in content.safety.country_names and what[0] == "c"):
            await subscriptions.set_country(session, user_id, None if what == "cauto" else what[1:])
            current = await subscriptions.load(session, user_id)
            return settings_view(content, current, now)
        if what == "rtime":
            rows = time_keyboard(content, "set", "r", REMINDER_CHOICES)
            rows.append([button(content.text("buttons.back"), "set", "main")])
            return View(content.text("settings.reminder_time_pick"), keyboard(rows))
        if what == "weekly":
            if current.weekly_summary:
                await subscriptions.stop_weekly_summary(session, user_id)
            else:
                await subscriptions.start_weekly_summary(session, user_id, now)
            current = await subscriptions.load(session, user_id)
        elif what == "rem":
            at = None if current.reminder_time else subscriptions.DEFAULT_REMINDER_TIME
            current = await subscriptions.set_reminder(session, user_id, at, now)
        elif what.startswith("r") and (at := parse_time_of_day(what[1:])) is not None:
            current = await subscriptions.set_reminder(session, user_id, at, now)
        elif what.startswith("t") and (at := parse_time_of_day(what[1:])) is not None:
            current = await subscriptions.set_tip_time(session, user_id, at, now)
        elif what == "pause" and current.subscribed:
            current = await subscriptions.pause(
                session, user_id, subscriptions.DEFAULT_PAUSE_DAYS, now
            )
        elif what == "resume" and current.subscribed:
            current = await subscriptions.resume(session, user_id, now)
        elif what == "off":
            await subscriptions.unsubscribe(session, user_id)
            current = await subscriptions.load(session, user_id)
        elif what == "on":
            if current.timezone is None:
                return View(content.text("settings.zone_help"), back)
            current = await subscriptions.subscribe(session, user_id, now)
        elif what != "main":
            return None
    return settings_view(content, current, now)


# ---------------------------------------------------------------- tips


async def send_tip(update: Update, context: Context, only_topic: str | None = None) -> None:
    """Send the user's next tip now, without touching the daily schedule."""
    rt = runtime(context)
    ids = await visit(rt, update)
    if ids is None:
        return
    async with unit_of_work(rt.sessions) as session:
        tip = await tip_history.next_tip_for(
            session, rt.content, ids[0], only_topic=only_topic, now=rt.clock.now()
        )
        if tip is not None:
            await tip_history.record_view(session, ids[0], tip)
    if tip is None:
        await context.bot.send_message(ids[1], rt.content.text("daily.no_tips_left"))
        return
    view = tip_view(rt.content, tip)
    await context.bot.send_message(ids[1], view.text, reply_markup=view.markup)


async def tip_command(update: Update, context: Context) -> None:
    """/tip: a tip right now."""
    await send_tip(update, context)


# ---------------------------------------------------------------- buttons


async def on_button(update: Update, context: Context) -> None:
    """Every button of this feature: time zones, times, settings, focus, feedback, more tips."""
    query = update.callback_query
    if query is None:
        return
    rt = runtime(context)
    press = decode(query.data)
    user_id = await visit_id(rt, update)
    if press is None or user_id is None:
        await query.answer(rt.content.text("errors.stale_button"), show_alert=True)
        return
    handled = await _dispatch(update, context, query, press, user_id)
    if not handled:
        await query.answer(rt.content.text("errors.stale_button"), show_alert=True)


async def _dispatch(
    update: Update, context: Context, query: CallbackQuery, press: Callback, user_id: int
) -> bool:
    rt = runtime(context)
    content = rt.content
    action, args = press.action, press.args
    if action == "tz":
        if args[0] not in known_zones():
            return False
        await query.answer()
        await _apply_zone(update, context, user_id, args[0])
        return True
    if action == "tm":
        at = parse_time_of_day(args[0])
        if at is None:
            return False
        now = rt.clock.now()
        async with unit_of_work(rt.sessions) as session:
            current = await subscriptions.set_tip_time(session, user_id, at, now)
            if current.timezone is not None:
                current = await subscriptions.subscribe(session, user_id, now)
        await query.answer()
        if current.timezone is None:
            await edit(query, View(content.text("daily.need_zone")))
        else:
            await edit(query, _subscribed_view(content, current, now))
        return True
    if action == "sub":
        await query.answer()
        await edit(query, await _subscribe_view(rt, user_id))
        return True
    if action == "set":
        changed = await _settings_action(rt, user_id, args[0])
        if changed is None:
            return False
        await query.answer()
        await edit(query, changed)
        return True
    if action == "focus":
        if args[0] not in content.topics:
            return False
        async with unit_of_work(rt.sessions) as session:
            focus = await subscriptions.toggle_focus(session, user_id, args[0])
        await query.answer()
        await edit(query, focus_view(content, focus))
        return True
    if action == "fb":
        tip = content.tips.get(args[1])
        if tip is None or args[0] not in ("h", "n"):
            return False
        verdict = Feedback.HELPFUL if args[0] == "h" else Feedback.NOT_FOR_ME
        async with unit_of_work(rt.sessions) as session:
            await tip_history.record_feedback(session, user_id, tip, verdict)
        key = "daily.feedback_helpful" if args[0] == "h" else "daily.feedback_not_for_me"
        await query.answer(content.text(key))
        try:
            await query.edit_message_reply_markup(tip_markup(content, tip, feedback=False))
        except BadRequest as exc:
            if "not modified" not in str(exc):
                raise
        return True
    if action == "tip":
        topic = None if args[0] == "any" else args[0]
        if topic is not None and topic not in content.topics:
            return False
        await query.answer()
        await send_tip(update, context, only_topic=topic)
        return True
    return False
