"""/checkin (guided in one edited message, or a quick form), /history and /trends."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Sequence
from dataclasses import replace
from datetime import date, timedelta
from html import escape

from sqlalchemy import select
from telegram import CallbackQuery, InlineKeyboardButton, Update
from telegram.error import BadRequest
from telegram.ext import ApplicationHandlerStop

from bot.charts import ROLLING_WINDOW, DayPoint, render_trends
from bot.content import Content
from bot.db.engine import unit_of_work
from bot.db.models import User
from bot.handlers.common import Context, reply, runtime, visit
from bot.handlers.daily import edit
from bot.handlers.fallback import crisis_message
from bot.keyboards import button, decode, keyboard
from bot.runtime import Runtime
from bot.services import checkins, safety, subscriptions, tip_history
from bot.services.checkins import Draft, Entry, QuickFormError, Scores
from bot.views import View, chart_labels, tip_view

BUTTON_PATTERN = r"^ck:"
REMINDER_PATTERN = r"^rem:"
SNOOZE_MINUTES = ("60", "180")
HISTORY_DAYS = 14
TRENDS_DAYS = 30


# ---------------------------------------------------------------- views


def _so_far(content: Content, scores: Scores) -> str:
    parts = [
        content.text(f"checkin.so_far_{field}", value=_score_label(content, field, value))
        for field in checkins.FIELDS
        if (value := getattr(scores, field)) is not None
    ]
    return f" {content.text('checkin.so_far_separator')} ".join(parts)


def _score_label(content: Content, field: str, value: int) -> str:
    return content.text(f"buttons.mood_{value}") if field == "mood" else str(value)


def step_view(content: Content, draft: Draft) -> View:
    """The one check-in message, at the draft's current step."""
    step = draft.step
    rows: list[list[InlineKeyboardButton]] = []
    if step in ("pain", "stress"):
        rows = [
            [button(str(v), "ck", step, str(v)) for v in range(0, 6)],
            [button(str(v), "ck", step, str(v)) for v in range(6, 11)],
        ]
    elif step == "mood":
        rows = [
            [button(content.text(f"buttons.mood_{v}"), "ck", step, str(v)) for v in range(1, 6)]
        ]
    elif step == "sleep":
        rows = [[button(str(v), "ck", step, str(v)) for v in range(1, 6)]]
    else:
        rows = [[button(content.text("buttons.skip"), "ck", "nav", "skip")]]
    navigation = [button(content.text("buttons.cancel"), "ck", "nav", "cancel")]
    if step != checkins.STEPS[0]:
        navigation.insert(0, button(content.text("buttons.back"), "ck", "nav", "back"))
    rows.append(navigation)
    text = content.text(f"checkin.step_{step}", so_far=_so_far(content, draft.scores))
    return View(text, keyboard(rows))


def consent_view(content: Content) -> View:
    return View(
        content.text("checkin.consent"),
        keyboard(
            [
                [
                    button(content.text("buttons.agree"), "ck", "consent", "yes"),
                    button(content.text("buttons.not_now"), "ck", "consent", "no"),
                ]
            ]
        ),
    )


def _when(content: Content, previous: date, today: date) -> str:
    if previous == today:
        return content.text("checkin.when_earlier_today")
    if previous == today - timedelta(days=1):
        return content.text("checkin.when_yesterday")
    if today - previous < timedelta(days=7):
        return content.text("checkin.when_weekday", weekday=previous.strftime("%A"))
    return content.text("checkin.when_date", date=previous.strftime("%-d %B"))


def summary_line(content: Content, entry: Entry, previous: Sequence[Entry]) -> str:
    """ "pain 6, down 1 since Tuesday · stress 4" for the saved check-in."""
    parts = []
    for field in checkins.FIELDS:
        value = getattr(entry.scores, field)
        if value is None:
            continue
        name = content.text(f"checkin.field_{field}")
        earlier = next(
            (e for e in reversed(previous) if getattr(e.scores, field) is not None), None
        )
        shown = _score_label(content, field, value)
        if earlier is None:
            parts.append(content.text("checkin.summary_first", field=name, value=shown))
            continue
        before = getattr(earlier.scores, field)
        when = _when(content, earlier.local_date, entry.local_date)
        if value < before:
            key = "checkin.summary_down"
        elif value > before:
            key = "checkin.summary_up"
        else:
            key = "checkin.summary_same"
        parts.append(
            content.text(key, field=name, value=shown, delta=abs(value - before), when=when)
        )
    if not parts:
        return content.text("checkin.saved_no_scores")
    parts[0] = parts[0][:1].upper() + parts[0][1:]
    return content.text(
        "checkin.saved", summary=f" {content.text('checkin.summary_separator')} ".join(parts)
    )


# ---------------------------------------------------------------- entry points


async def _has_consent(rt: Runtime, user_id: int) -> bool:
    async with rt.sessions() as session:
        consent = await session.scalar(select(User.checkin_consent_at).where(User.id == user_id))
    return consent is not None


async def checkin_command(update: Update, context: Context) -> None:
    """/checkin: guided (taps) without arguments, the quick form with them."""
    rt = runtime(context)
    ids = await visit(rt, update)
    if ids is None:
        return
    user_id, chat_id = ids
    content = rt.content
    raw = " ".join(context.args or []).strip()
    if raw:
        try:
            scores = checkins.parse_quick(raw)
        except QuickFormError as exc:
            await reply(update, _quick_error(content, exc))
            return
        if not await _has_consent(rt, user_id):
            view = consent_view(content)
            await reply(update, content.text("checkin.consent_needed_quick"))
            await reply(update, view.text, reply_markup=view.markup)
            return
        await finish(update, context, user_id, scores, None)
        return
    if not await _has_consent(rt, user_id):
        view = consent_view(content)
        await reply(update, view.text, reply_markup=view.markup)
        return
    await _start_guided(update, context, user_id, chat_id, None)


def _quick_error(content: Content, exc: QuickFormError) -> str:
    if exc.reason == "range" and exc.field:
        low, high = checkins.RANGES[exc.field]
        name = content.text(f"checkin.field_{exc.field}")
        return content.text("checkin.quick_range", field=name.capitalize(), low=low, high=high)
    if exc.reason == "field" and exc.field:
        return content.text("checkin.quick_field", name=escape(exc.field[:20]))
    if exc.reason == "note_length":
        return content.text("checkin.note_too_long", limit=checkins.NOTE_LIMIT)
    return content.text("checkin.quick_unreadable")


async def _start_guided(
    update: Update, context: Context, user_id: int, chat_id: int, query: CallbackQuery | None
) -> None:
    rt = runtime(context)
    now = rt.clock.now()
    async with unit_of_work(rt.sessions) as session:
        draft = await checkins.start_draft(session, rt.keys.get(), user_id, chat_id, now)
    view = step_view(rt.content, draft)
    if query is not None and query.message is not None:
        await edit(query, view)
        message_id = query.message.message_id
    else:
        sent = await context.bot.send_message(chat_id, view.text, reply_markup=view.markup)
        message_id = sent.message_id
    async with unit_of_work(rt.sessions) as session:
        current = await checkins.get_draft(session, rt.keys.get(), user_id, now)
        if current is not None:
            await checkins.put_draft(session, rt.keys.get(), _with_message(current, message_id))


def _with_message(draft: Draft, message_id: int) -> Draft:
    return replace(draft, message_id=message_id)


async def on_button(update: Update, context: Context) -> None:
    """Consent, answers, Back, Skip and Cancel of the guided check-in."""
    query = update.callback_query
    rt = runtime(context)
    press = decode(query.data if query else None)
    ids = await visit(rt, update)
    if query is None or press is None or ids is None or press.action != "ck":
        if query is not None:
            await query.answer(rt.content.text("errors.stale_button"), show_alert=True)
        return
    user_id, chat_id = ids
    kind, value = press.args
    content, now = rt.content, rt.clock.now()
    if kind == "consent":
        await query.answer()
        if value == "yes":
            async with unit_of_work(rt.sessions) as session:
                user = await session.get(User, user_id)
                if user is not None and user.checkin_consent_at is None:
                    user.checkin_consent_at = now
            await _start_guided(update, context, user_id, chat_id, query)
        else:
            await edit(query, View(content.text("checkin.consent_declined")))
        return
    if kind == "nav" and value == "start":
        await query.answer()
        if await _has_consent(rt, user_id):
            await _start_guided(update, context, user_id, chat_id, None)
        else:
            view = consent_view(content)
            await context.bot.send_message(chat_id, view.text, reply_markup=view.markup)
        return
    keys = rt.keys.get()
    async with unit_of_work(rt.sessions) as session:
        draft = await checkins.get_draft(session, keys, user_id, now)
    message_id = query.message.message_id if query.message else None
    if draft is None:
        await query.answer()
        await edit(query, View(content.text("checkin.expired")))
        return
    if draft.message_id != message_id:
        await query.answer(content.text("errors.stale_button"), show_alert=True)
        return
    if kind == "nav":
        await _navigate(update, context, query, draft, value)
        return
    if kind != draft.step or not value.isdecimal() or len(value) > 2:
        await query.answer(content.text("errors.stale_button"), show_alert=True)
        return
    try:
        draft = checkins.answer(draft, int(value), now)
    except (ValueError, QuickFormError):
        await query.answer(content.text("errors.stale_button"), show_alert=True)
        return
    async with unit_of_work(rt.sessions) as session:
        await checkins.put_draft(session, keys, draft)
    await query.answer()
    await edit(query, step_view(content, draft))


async def _navigate(
    update: Update, context: Context, query: CallbackQuery, draft: Draft, value: str
) -> None:
    rt = runtime(context)
    content, now = rt.content, rt.clock.now()
    if value == "cancel":
        async with unit_of_work(rt.sessions) as session:
            await checkins.drop_draft(session, draft.user_id)
        await query.answer()
        await edit(query, View(content.text("checkin.cancelled")))
    elif value == "back":
        draft = checkins.back(draft, now)
        async with unit_of_work(rt.sessions) as session:
            await checkins.put_draft(session, rt.keys.get(), draft)
        await query.answer()
        await edit(query, step_view(content, draft))
    elif value == "skip" and draft.step == "note":
        await query.answer()
        await finish(update, context, draft.user_id, draft.scores, query)
    else:
        await query.answer(content.text("errors.stale_button"), show_alert=True)


async def note_text(update: Update, context: Context) -> None:
    """Text typed while a check-in waits for its note becomes the note (and nothing else)."""
    rt = runtime(context)
    user, message = update.effective_user, update.effective_message
    if user is None or message is None or not message.text or message.text.startswith("/"):
        return
    now = rt.clock.now()
    async with rt.sessions() as session:
        draft = await checkins.get_draft(session, rt.keys.get(), user.id, now)
    if draft is None or draft.step != "note":
        return
    note = message.text.strip()
    if len(note) > checkins.NOTE_LIMIT:
        await reply(update, rt.content.text("checkin.note_too_long", limit=checkins.NOTE_LIMIT))
        raise ApplicationHandlerStop
    await finish(update, context, user.id, replace(draft.scores, note=note), None, draft)
    raise ApplicationHandlerStop


# ---------------------------------------------------------------- saving


async def finish(
    update: Update,
    context: Context,
    user_id: int,
    scores: Scores,
    query: CallbackQuery | None,
    draft: Draft | None = None,
) -> None:
    """Save; safety texts first; then the summary, a low-mood note, and a matched tip."""
    rt = runtime(context)
    content, now, keys = rt.content, rt.clock.now(), rt.keys.get()
    chat = update.effective_chat
    if chat is None:
        return
    async with rt.sessions() as session:
        previous = await checkins.last_entries(session, keys, user_id, 10)
    entry = await rt.checkin_writer.save(user_id, scores, now)
    concern = safety.assess(scores.note or "", content.safety)
    if concern.crisis:
        await context.bot.send_message(chat.id, await crisis_message(context, update))
    if concern.redflag or (scores.pain is not None and scores.pain >= checkins.REDFLAG_PAIN):
        await context.bot.send_message(chat.id, content.safety.redflags_text)
    summary = summary_line(content, entry, previous)
    message_id = draft.message_id if draft else None
    if query is not None:
        await edit(query, View(summary))
    elif message_id is not None:
        try:
            await context.bot.edit_message_text(summary, chat_id=chat.id, message_id=message_id)
        except BadRequest:  # the step message was deleted: say it in a new one
            await context.bot.send_message(chat.id, summary)
    else:
        await context.bot.send_message(chat.id, summary)
    if checkins.low_mood_streak([*previous, entry]):
        markup = keyboard([[button(content.text("buttons.open_mood"), "topic", "mood")]])
        await context.bot.send_message(
            chat.id, content.text("checkin.low_mood"), reply_markup=markup
        )
    if concern.crisis:
        return
    topic = checkins.matched_topic(scores, random.Random(f"{user_id}:{now.date()}").randrange(2))
    async with unit_of_work(rt.sessions) as session:
        tip = await tip_history.next_tip_for(session, content, user_id, only_topic=topic, now=now)
        if tip is not None:
            await tip_history.record_view(session, user_id, tip)
    if tip is not None:
        view = tip_view(content, tip)
        await context.bot.send_message(chat.id, view.text, reply_markup=view.markup)


# ---------------------------------------------------------------- history and trends


async def _recent(rt: Runtime, user_id: int, days: int) -> tuple[date, list[Entry]]:
    """The user's local today and their check-ins of the last `days` local days."""
    async with rt.sessions() as session:
        user = await session.get(User, user_id)
        today = checkins.local_date_for(rt.clock.now(), user.timezone if user else None)
        entries = await checkins.entries_since(
            session, rt.keys.get(), user_id, today - timedelta(days=days - 1)
        )
    return today, entries


def _fmt(value: float | None, content: Content) -> str:
    return f"{value:4.1f}" if value is not None else f"{content.text('trends.not_reported'):>4}"


async def history(update: Update, context: Context) -> None:
    """/history: the last 14 days as a compact table."""
    rt = runtime(context)
    ids = await visit(rt, update)
    if ids is None:
        return
    content = rt.content
    _, entries = await _recent(rt, ids[0], HISTORY_DAYS)
    if not entries:
        await reply(update, content.text("history.empty"))
        return
    notes = {e.local_date for e in entries if e.scores.note}
    rows = [content.text("history.header")]
    for point in checkins.daily_points(entries):
        mark = content.text("history.note_mark") if point.day in notes else ""
        rows.append(
            f"{point.day.strftime('%a %d %b'):<10} {_fmt(point.pain, content)} "
            f"{_fmt(point.stress, content):>6} {_fmt(point.mood, content)} "
            f"{_fmt(point.sleep, content):>5} {mark}".rstrip()
        )
    table = escape("\n".join(rows))
    text = f"{content.text('history.title')}\n<pre>{table}</pre>\n{content.text('history.legend')}"
    await reply(update, text)


def trends_caption(content: Content, points: Sequence[DayPoint]) -> str:
    """Averages, and the stress–pain relation in plain words once there is enough data."""
    means = checkins.averages(points)
    caption = content.text(
        "trends.caption",
        days=len(points),
        **{
            f: (f"{v:.1f}" if v is not None else content.text("trends.not_reported"))
            for f, v in means.items()
        },
    )
    relation = checkins.stress_pain_relation(points)
    if relation is not None:
        if abs(relation.higher_stress_pain - relation.calmer_pain) < 0.5:
            extra = content.text("trends.relation_none")
        else:
            extra = content.text(
                "trends.relation",
                higher=f"{relation.higher_stress_pain:.1f}",
                calmer=f"{relation.calmer_pain:.1f}",
            )
    else:
        needed = checkins.RELATION_MIN_DAYS - checkins.days_with_both(points)
        extra = content.text("trends.need_more", count=max(needed, 1))
    return f"{caption}\n\n{extra}"


async def trends(update: Update, context: Context) -> None:
    """/trends: a chart of the last 30 days with averages and the stress–pain relation."""
    rt = runtime(context)
    ids = await visit(rt, update)
    if ids is None:
        return
    content = rt.content
    # The days before the window too: the first 7-day means on the chart need them.
    today, entries = await _recent(rt, ids[0], TRENDS_DAYS + ROLLING_WINDOW - 1)
    points = checkins.daily_points(entries)
    first = today - timedelta(days=TRENDS_DAYS - 1)
    shown = [point for point in points if point.day >= first]
    if not shown:
        await reply(update, content.text("trends.empty"))
        return
    png = await asyncio.to_thread(
        render_trends, points, chart_labels(content), days=TRENDS_DAYS, end=today
    )
    await context.bot.send_photo(ids[1], png, caption=trends_caption(content, shown))


async def on_reminder(update: Update, context: Context) -> None:
    """The reminder's Snooze 1 h, Snooze 3 h and Skip today."""
    query = update.callback_query
    rt = runtime(context)
    press = decode(query.data if query else None)
    ids = await visit(rt, update)
    if query is None or press is None or ids is None or press.action != "rem":
        if query is not None:
            await query.answer(rt.content.text("errors.stale_button"), show_alert=True)
        return
    content, choice = rt.content, press.args[0]
    if choice == "skip":
        await query.answer()
        await edit(query, View(content.text("reminder.skipped")))
        return
    if choice not in SNOOZE_MINUTES:
        await query.answer(content.text("errors.stale_button"), show_alert=True)
        return
    async with unit_of_work(rt.sessions) as session:
        snoozed = await subscriptions.snooze_reminder(session, ids[0], int(choice), rt.clock.now())
    if not snoozed:
        await query.answer(content.text("errors.stale_button"), show_alert=True)
        return
    await query.answer()
    await edit(query, View(content.text("reminder.snoozed", minutes=choice)))
