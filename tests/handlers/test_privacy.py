"""Data rights, operator access and flood control."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, date, datetime, timedelta

from sqlalchemy import func, select

from bot.app import BotApplication, retention_job
from bot.content import visible_text
from bot.db.engine import unit_of_work
from bot.db.models import (
    Base,
    CheckIn,
    Delivery,
    DeliveryStatus,
    ScheduleKind,
    User,
)
from bot.runtime import Runtime
from tests.fakes.telegram_api import FakeBotAPI, FakeMessage
from tests.harness import ChatDriver

NOW = datetime(2026, 6, 10, 9, 0, tzinfo=UTC)


def shown(message: FakeMessage) -> str:
    return visible_text(message.text or message.caption or "")


async def full_user(chat: ChatDriver, runtime: Runtime) -> None:
    """A person with a row in every table: settings, schedules, deliveries, views, feedback,
    check-ins, and a check-in in progress."""
    runtime.clock.set(NOW)
    await chat.command("/timezone", "Berlin")
    await chat.command("/subscribe")
    await chat.press("08:00 (suggested)")
    [tip] = await chat.command("/tip")
    await chat.press("👍 Helpful", tip.message_id)
    [consent] = await chat.command("/checkin")
    await chat.press("✅ I agree", consent.message_id)
    for day in range(3):
        runtime.clock.set(NOW - timedelta(days=day))
        await chat.command("/checkin", f"{4 + day} 3 4 2 note {day}")
    runtime.clock.set(NOW)
    [panel] = await chat.command("/settings")
    await chat.press("📝 Check-in reminder: off", panel.message_id)
    async with unit_of_work(runtime.sessions) as session:
        session.add(
            Delivery(
                user_id=chat.user_id,
                kind=ScheduleKind.DAILY_TIP,
                local_date=date(2026, 6, 9),
                due_at=NOW - timedelta(days=1),
                status=DeliveryStatus.SENT,
                tip_id="sleep-01",
            )
        )
    [step] = await chat.command("/checkin")
    await chat.press("5", step.message_id)  # a draft in progress


async def rows_of(runtime: Runtime, user_id: int) -> dict[str, int]:
    counts = {}
    async with runtime.sessions() as session:
        for table in Base.metadata.sorted_tables:
            column = table.c.id if table.name == "users" else table.c.get("user_id")
            if column is None:
                continue
            counts[table.name] = (
                await session.scalar(
                    select(func.count()).select_from(table).where(column == user_id)
                )
                or 0
            )
    return counts


async def test_export_contains_every_row_of_every_table(
    chat: ChatDriver, runtime: Runtime, fake_api: FakeBotAPI
) -> None:
    await full_user(chat, runtime)
    counts = await rows_of(runtime, chat.user_id)
    assert all(counts.values()), f"the fixture must fill every table: {counts}"
    replies = await chat.command("/export")
    documents = [m for m in replies if m.document is not None]
    assert [m.document_name for m in documents] == ["backcalm-export.json", "backcalm-checkins.csv"]
    data = json.loads(documents[0].document or b"")
    for table, count in counts.items():
        assert len(data[table]) == count, table
    notes = sorted(row["note"] for row in data["checkins"])
    assert notes == ["note 0", "note 1", "note 2"]
    assert data["checkin_drafts"][0]["pain"] == 5
    assert data["consent"]["checkins_consented_at"] is not None
    assert "payload" not in data["checkins"][0]
    rows = list(csv.DictReader(io.StringIO((documents[1].document or b"").decode())))
    assert sorted(r["pain"] for r in rows) == ["4", "5", "6"]
    assert {r["note"] for r in rows} == {"note 0", "note 1", "note 2"}


async def test_delete_removes_every_row_in_every_table(
    chat: ChatDriver, runtime: Runtime, fake_api: FakeBotAPI, app: BotApplication
) -> None:
    await full_user(chat, runtime)
    other = ChatDriver(app, fake_api, user_id=5555)
    await other.command("/tip")
    [question] = await chat.command("/delete")
    assert "can't be undone" in shown(question)
    await chat.press("✖️ Cancel", question.message_id)
    assert "Nothing was deleted" in shown(chat.last())
    assert any((await rows_of(runtime, chat.user_id)).values())

    [question] = await chat.command("/delete")
    await chat.press("🗑 Yes, delete everything", question.message_id)
    assert "Everything BackCalm stored about you is deleted" in shown(chat.last())
    assert not any((await rows_of(runtime, chat.user_id)).values())
    assert (await rows_of(runtime, other.user_id))["tip_views"] == 1, "others keep their data"
    # Nothing is scheduled for them any more, and /start is a first visit again.
    runtime.clock.set(NOW + timedelta(days=1))
    report = await runtime.delivery.tick()
    assert report.claimed == 0
    [welcome] = await chat.command("/start")
    assert "welcome to BackCalm" in shown(welcome)


async def test_the_delete_button_expires_after_five_minutes(
    chat: ChatDriver, runtime: Runtime
) -> None:
    runtime.clock.set(NOW)
    await chat.command("/tip")
    [question] = await chat.command("/delete")
    runtime.clock.set(NOW + timedelta(minutes=6))
    await chat.press("🗑 Yes, delete everything", question.message_id)
    assert "expired" in shown(chat.last())
    assert (await rows_of(runtime, chat.user_id))["users"] == 1


async def test_consent_is_revocable_from_privacy(chat: ChatDriver, runtime: Runtime) -> None:
    runtime.clock.set(NOW)
    [consent] = await chat.command("/checkin")
    await chat.press("✅ I agree", consent.message_id)
    await chat.command("/checkin", "5 5")
    [text] = await chat.command("/privacy")
    assert "730 days" in shown(text)
    assert "180 days" in shown(text)
    await chat.press("🛑 Stop recording check-ins", text.message_id)
    assert "no longer recorded" in shown(chat.last())
    await chat.press("🗑 Delete my check-ins", text.message_id)
    assert "Deleted 1 check-ins" in shown(chat.last())
    replies = await chat.command("/checkin", "5 5")
    assert "I need your OK" in shown(replies[0])
    async with runtime.sessions() as session:
        assert await session.scalar(select(func.count()).select_from(CheckIn)) == 0
        user = await session.get(User, chat.user_id)
    assert user is not None
    assert user.checkin_consent_at is None


async def test_retention_purges_old_checkins_and_deliveries(
    chat: ChatDriver, runtime: Runtime, app: BotApplication
) -> None:
    runtime.clock.set(NOW - timedelta(days=800))
    [consent] = await chat.command("/checkin")
    await chat.press("✅ I agree", consent.message_id)
    await chat.command("/checkin", "5 5 very old")
    runtime.clock.set(NOW)
    await chat.command("/checkin", "4 4 recent")
    async with unit_of_work(runtime.sessions) as session:
        for age in (200, 10):
            session.add(
                Delivery(
                    user_id=chat.user_id,
                    kind=ScheduleKind.DAILY_TIP,
                    local_date=(NOW - timedelta(days=age)).date(),
                    due_at=NOW - timedelta(days=age),
                    status=DeliveryStatus.SENT,
                )
            )

    class Job:
        application = app

    await retention_job(Job())  # type: ignore[arg-type]
    async with runtime.sessions() as session:
        assert await session.scalar(select(func.count()).select_from(CheckIn)) == 1
        ages = list(await session.scalars(select(Delivery.local_date)))
    assert ages == [(NOW - timedelta(days=10)).date()]


async def test_admin_for_operators_only(
    app: BotApplication, fake_api: FakeBotAPI, runtime: Runtime
) -> None:
    runtime.settings.admin_ids = frozenset({777})
    stranger = ChatDriver(app, fake_api, user_id=778)
    [answer] = await stranger.command("/admin")
    assert "don't know the command /admin" in shown(answer)
    operator = ChatDriver(app, fake_api, user_id=777)
    runtime.clock.set(NOW)
    [consent] = await operator.command("/checkin")
    await operator.press("✅ I agree", consent.message_id)
    await operator.command("/checkin", "6 6 secret-admin-note")
    [status] = await operator.command("/admin")
    text = shown(status)
    assert "Users: 1" in text
    assert "Check-ins today: 1" in text
    assert "secret-admin-note" not in text
    assert "Last errors" in text


async def test_flood_control_pauses_one_user_only(
    app: BotApplication, fake_api: FakeBotAPI, runtime: Runtime
) -> None:
    flooder = ChatDriver(app, fake_api, user_id=900)
    calm = ChatDriver(app, fake_api, user_id=901)
    limit = runtime.settings.flood_max_updates
    for _ in range(limit):
        await flooder.command("/help")
    replies = await flooder.command("/help")
    assert len(replies) == 1
    assert "take a short break" in shown(replies[0])
    assert await flooder.command("/help") == [], "ignored while paused"
    assert len(await calm.command("/help")) == 1, "everyone else is unaffected"


async def test_groups_hold_no_health_data(chat: ChatDriver, fake_api: FakeBotAPI) -> None:
    group = -100777
    for command in ("/checkin", "/history", "/export", "/delete", "/subscribe"):
        await chat.feed(
            fake_api.send_command(chat.user_id, command, "5 5", chat_type="group", chat_id=group)
        )
    assert fake_api.sent_messages(group) == []
