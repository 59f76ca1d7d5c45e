"""/privacy choices, /export, /delete (two steps, the confirmation expires) and /admin."""

from __future__ import annotations

import json
from html import escape

from sqlalchemy import func, select
from telegram import InputFile, Update

from bot.db.engine import unit_of_work
from bot.db.models import CheckIn, Delivery, Schedule, ScheduleKind, User
from bot.handlers.common import Context, reply, runtime
from bot.handlers.daily import edit
from bot.keyboards import button, decode, keyboard
from bot.runtime import Runtime
from bot.services import checkins, privacy
from bot.views import View

BUTTON_PATTERN = r"^(priv|del):"
CONFIRM_SECONDS = 5 * 60


async def privacy_command(update: Update, context: Context) -> None:
    """/privacy: what is stored and why, with the choices that apply to this person."""
    rt = runtime(context)
    user = update.effective_user
    consent = None
    if user is not None:
        async with rt.sessions() as session:
            consent = await session.scalar(
                select(User.checkin_consent_at).where(User.id == user.id)
            )
    content = rt.content
    text = content.text(
        "privacy.text",
        checkin_days=rt.settings.checkin_retention_days,
        delivery_days=rt.settings.delivery_retention_days,
    )
    markup = (
        keyboard([[button(content.text("buttons.stop_recording"), "priv", "revoke")]])
        if consent is not None
        else None
    )
    await reply(update, text, reply_markup=markup)


async def export(update: Update, context: Context) -> None:
    """/export: everything stored about this person, as JSON, and check-ins as CSV."""
    rt = runtime(context)
    user, chat = update.effective_user, update.effective_chat
    if user is None or chat is None:
        return
    async with rt.sessions() as session:
        data = await privacy.export_user(session, rt.keys.get(), user.id)
    if not data.get(User.__tablename__):
        await reply(update, rt.content.text("privacy.nothing_stored"))
        return
    await context.bot.send_chat_action(chat.id, "upload_document")
    payload = json.dumps(data, ensure_ascii=False, indent=2).encode()
    await context.bot.send_document(
        chat.id,
        InputFile(payload, filename="backcalm-export.json"),
        caption=rt.content.text("privacy.export_caption"),
    )
    if data.get(CheckIn.__tablename__):
        await context.bot.send_document(
            chat.id,
            InputFile(privacy.checkins_csv(data).encode(), filename="backcalm-checkins.csv"),
            caption=rt.content.text("privacy.export_csv_caption"),
        )


async def delete_command(update: Update, context: Context) -> None:
    """/delete: ask once more, with a button that works for five minutes."""
    rt = runtime(context)
    issued = str(int(rt.clock.now().timestamp()))
    content = rt.content
    markup = keyboard(
        [
            [button(content.text("buttons.delete_confirm"), "del", "yes", issued)],
            [button(content.text("buttons.cancel"), "del", "no", issued)],
        ]
    )
    await reply(update, content.text("privacy.delete_confirm"), reply_markup=markup)


async def on_button(update: Update, context: Context) -> None:
    """Confirm or cancel /delete; stop recording check-ins; delete check-ins only."""
    query = update.callback_query
    rt = runtime(context)
    press = decode(query.data if query else None)
    user = update.effective_user
    if query is None or press is None or user is None:
        if query is not None:
            await query.answer(rt.content.text("errors.stale_button"), show_alert=True)
        return
    content = rt.content
    if press.action == "del":
        choice, issued = press.args
        if not issued.isdecimal() or choice not in ("yes", "no"):
            await query.answer(content.text("errors.stale_button"), show_alert=True)
            return
        if choice == "no":
            await query.answer()
            await edit(query, View(content.text("privacy.delete_cancelled")))
            return
        if rt.clock.now().timestamp() - int(issued) > CONFIRM_SECONDS:
            await query.answer()
            await edit(query, View(content.text("privacy.delete_expired")))
            return
        async with unit_of_work(rt.sessions) as session:
            await privacy.delete_user(session, user.id)
        await query.answer()
        await edit(query, View(content.text("privacy.deleted")))
        return
    choice = press.args[0]
    if choice == "revoke":
        async with unit_of_work(rt.sessions) as session:
            account = await session.get(User, user.id)
            if account is not None:
                account.checkin_consent_at = None
            await checkins.drop_draft(session, user.id)
        await query.answer()
        markup = keyboard(
            [
                [button(content.text("buttons.delete_checkins"), "priv", "delchk")],
                [button(content.text("buttons.keep_checkins"), "priv", "keep")],
            ]
        )
        await edit(query, View(content.text("privacy.revoked"), markup))
    elif choice == "delchk":
        async with unit_of_work(rt.sessions) as session:
            count = await privacy.delete_checkins(session, user.id)
        await query.answer()
        await edit(query, View(content.text("privacy.checkins_deleted", count=count)))
    elif choice == "keep":
        await query.answer()
        await edit(query, View(content.text("privacy.checkins_kept")))
    else:
        await query.answer(content.text("errors.stale_button"), show_alert=True)


async def admin(update: Update, context: Context) -> None:
    """/admin for ADMIN_IDS: counts and recent errors, never anyone's health data."""
    rt = runtime(context)
    user = update.effective_user
    if user is None or user.id not in rt.settings.admin_ids:
        message = update.effective_message
        word = (message.text or "/admin").split(maxsplit=1)[0] if message else "/admin"
        await reply(update, rt.content.text("fallback.unknown_command", command=escape(word[:40])))
        return
    await reply(update, await admin_text(rt))


async def admin_text(rt: Runtime) -> str:
    content, now = rt.content, rt.clock.now()
    day_start = now.replace(hour=0, minute=0, second=0, microsecond=0)
    async with rt.sessions() as session:
        users_total = await session.scalar(select(func.count()).select_from(User))
        subscribers = await session.scalar(
            select(func.count())
            .select_from(Schedule)
            .join(User, User.id == Schedule.user_id)
            .where(
                Schedule.kind == ScheduleKind.DAILY_TIP,
                Schedule.active.is_(True),
                User.is_active.is_(True),
            )
        )
        outcomes = await session.execute(
            select(Delivery.status, func.count())
            .where(Delivery.claimed_at >= day_start)
            .group_by(Delivery.status)
        )
        checkins_today = await session.scalar(
            select(func.count()).where(CheckIn.created_at >= day_start)
        )
    by_outcome = ", ".join(f"{status.value} {count}" for status, count in outcomes) or "0"
    errors = "\n".join(
        content.text("admin.error_line", at=at.strftime("%H:%M"), error=escape(kind))
        for at, kind in rt.errors
    ) or content.text("admin.no_errors")
    return content.text(
        "admin.text",
        users=users_total or 0,
        subscribers=subscribers or 0,
        deliveries=by_outcome,
        checkins=checkins_today or 0,
        errors=errors,
    )
