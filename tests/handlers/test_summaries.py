"""Weekly summaries and check-in reminders, delivered by the engine as their own kinds."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from bot.content import visible_text
from bot.db.models import Delivery, DeliveryStatus, Schedule, ScheduleKind
from bot.runtime import Runtime
from tests.fakes.telegram_api import FakeBotAPI, FakeMessage
from tests.harness import ChatDriver

# Wednesday 3 June 2026, 09:00 UTC (11:00 in Berlin).
WEDNESDAY = datetime(2026, 6, 3, 9, 0, tzinfo=UTC)
SUNDAY_18_BERLIN = datetime(2026, 6, 7, 16, 0, tzinfo=UTC)


def shown(message: FakeMessage) -> str:
    return visible_text(message.text or message.caption or "")


def labels(api: FakeBotAPI, message: FakeMessage) -> list[str]:
    return [text for text, _ in api.buttons(message)]


async def deliver(runtime: Runtime, at: datetime) -> None:
    runtime.clock.set(at)
    await runtime.delivery.tick()
    await runtime.delivery.idle()


async def setup_user(chat: ChatDriver, runtime: Runtime) -> None:
    runtime.clock.set(WEDNESDAY)
    await chat.command("/timezone", "Berlin")
    [consent] = await chat.command("/checkin")
    await chat.press("✅ I agree", consent.message_id)


async def test_weekly_summary_starts_after_the_third_checkin(
    chat: ChatDriver, runtime: Runtime, fake_api: FakeBotAPI
) -> None:
    await setup_user(chat, runtime)
    # Last week: higher pain.
    for day in (8, 9):
        runtime.clock.set(WEDNESDAY - timedelta(days=day))
        await chat.command("/checkin", "7 6 3 3")
    [panel] = await chat.command("/settings")
    assert "Weekly summary: starts after your third check-in" in shown(panel)
    for day in (0, 1, 2):
        runtime.clock.set(WEDNESDAY + timedelta(days=day))
        await chat.command("/checkin", "4 3 4 4")
    [panel] = await chat.command("/settings")
    assert "Weekly summary: on (Sundays at 18:00)" in shown(panel)
    async with runtime.sessions() as session:
        weekly = await session.scalar(
            select(Schedule).where(Schedule.kind == ScheduleKind.WEEKLY_SUMMARY)
        )
    assert weekly is not None
    assert weekly.next_run_at == SUNDAY_18_BERLIN

    before = len(fake_api.sent_messages(chat.user_id))
    await deliver(runtime, SUNDAY_18_BERLIN + timedelta(seconds=5))
    [summary] = fake_api.sent_messages(chat.user_id)[before:]
    assert summary.photo is not None
    assert summary.photo.startswith(b"\x89PNG")
    text = shown(summary)
    assert "Your week (3 days with check-ins)" in text
    assert "Average pain 4.0" in text
    assert "pain down 3.0" in text
    assert "💡" in text


async def test_weekly_summary_can_be_turned_off(
    chat: ChatDriver, runtime: Runtime, fake_api: FakeBotAPI
) -> None:
    await setup_user(chat, runtime)
    for day in range(3):
        runtime.clock.set(WEDNESDAY + timedelta(days=day))
        await chat.command("/checkin", "4 3")
    [panel] = await chat.command("/settings")
    await chat.press("📊 Weekly summary: on", panel.message_id)
    assert "Weekly summary: off" in shown(chat.last())
    before = len(fake_api.sent_messages(chat.user_id))
    await deliver(runtime, SUNDAY_18_BERLIN + timedelta(seconds=5))
    assert len(fake_api.sent_messages(chat.user_id)) == before
    await chat.command("/checkin", "4 3")
    [panel] = await chat.command("/settings")
    assert "Weekly summary: off" in shown(panel), "not restarted by later check-ins"


async def test_reminder_snooze_skip_and_already_checked_in(
    chat: ChatDriver, runtime: Runtime, fake_api: FakeBotAPI
) -> None:
    await setup_user(chat, runtime)
    [panel] = await chat.command("/settings")
    assert "Check-in reminder: off" in shown(panel)
    await chat.press("📝 Check-in reminder: off", panel.message_id)
    assert "Check-in reminder: daily at 20:00" in shown(chat.last())
    await chat.press("🕘 Reminder time", panel.message_id)
    await chat.press("21:00", panel.message_id)
    assert "daily at 21:00" in shown(chat.last())

    evening = datetime(2026, 6, 3, 19, 0, 5, tzinfo=UTC)  # 21:00:05 in Berlin
    before = len(fake_api.sent_messages(chat.user_id))
    await deliver(runtime, evening)
    [reminder] = fake_api.sent_messages(chat.user_id)[before:]
    assert "quick check-in" in shown(reminder)
    assert labels(fake_api, reminder) == [
        "📝 Check in now",
        "⏰ Snooze 1 h",
        "⏰ Snooze 3 h",
        "Skip today",
    ]

    await chat.press("⏰ Snooze 1 h", reminder.message_id)
    assert "again in 60 minutes" in shown(chat.last())
    await deliver(runtime, evening + timedelta(minutes=30))
    assert len(fake_api.sent_messages(chat.user_id)) == before + 1
    await deliver(runtime, evening + timedelta(minutes=61))
    [again] = fake_api.sent_messages(chat.user_id)[before + 1 :]
    await chat.press("Skip today", again.message_id)
    assert "no check-in today" in shown(chat.last())

    # The next day the person has already checked in: the reminder is skipped.
    runtime.clock.set(evening + timedelta(days=1, hours=-5))
    await chat.command("/checkin", "3 3")
    count = len(fake_api.sent_messages(chat.user_id))
    await deliver(runtime, evening + timedelta(days=1))
    assert len(fake_api.sent_messages(chat.user_id)) == count
    async with runtime.sessions() as session:
        statuses = list(
            await session.scalars(
                select(Delivery.status)
                .where(Delivery.kind == ScheduleKind.CHECKIN_REMINDER)
                .order_by(Delivery.id)
            )
        )
    assert statuses == [DeliveryStatus.SENT, DeliveryStatus.SENT, DeliveryStatus.SKIPPED]


async def test_check_in_now_from_the_reminder(chat: ChatDriver, runtime: Runtime) -> None:
    await setup_user(chat, runtime)
    [panel] = await chat.command("/settings")
    await chat.press("📝 Check-in reminder: off", panel.message_id)
    await deliver(runtime, datetime(2026, 6, 3, 18, 0, 5, tzinfo=UTC))
    replies = await chat.press("📝 Check in now")
    assert "1 of 5" in shown(replies[0])
