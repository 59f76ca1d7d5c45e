"""Daily tips end to end: the real bot polls the fake Bot API; the test drives the clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select

from bot.app import BotApplication, get_runtime
from bot.content import visible_text
from bot.db.engine import unit_of_work
from bot.db.models import Delivery, DeliveryStatus, Schedule, ScheduleKind, User
from tests.fakes.telegram_api import FakeBotAPI, RetryAfterFault, ServerErrorFault

USER = 777
# 2026-06-01 10:00 UTC is 12:00 in Berlin.
NOON_BERLIN = datetime(2026, 6, 1, 10, 0, tzinfo=UTC)


async def test_subscribe_and_receive_the_tip_at_the_chosen_minute(
    fake_api: FakeBotAPI, polling_bot: BotApplication
) -> None:
    runtime = get_runtime(polling_bot)
    runtime.clock.set(NOON_BERLIN)
    fake_api.send_command(USER, "/subscribe")
    await fake_api.wait_for_bot_message(USER, contains="Where are you?")
    fake_api.send_command(USER, "/timezone", "Berlin")
    question = await fake_api.wait_for_bot_message(USER, contains="When would you like")
    fake_api.press(USER, "08:00 (suggested)", question.message_id)
    await fake_api.wait_for(
        lambda: "Daily tips are on" in visible_text(fake_api.last_bot_message(USER).text or "")
    )
    before = len(fake_api.sent_messages(USER))

    # 07:59:30 the next morning: not yet.
    runtime.clock.set(datetime(2026, 6, 2, 5, 59, 30, tzinfo=UTC))
    await runtime.delivery.tick()
    await runtime.delivery.idle()
    assert len(fake_api.sent_messages(USER)) == before

    # 08:00:10: the tip arrives, through the engine's own repeating job.
    runtime.clock.set(datetime(2026, 6, 2, 6, 0, 10, tzinfo=UTC))
    tip = await fake_api.wait_for_bot_message(USER, contains="Try this today", timeout=10)
    assert "👍 Helpful" in [label for label, _ in fake_api.buttons(tip)]
    await runtime.delivery.idle()
    async with runtime.sessions() as session:
        record = await session.scalar(select(Delivery))
    assert record is not None
    assert record.status == DeliveryStatus.SENT
    assert record.local_date.isoformat() == "2026-06-02"


async def test_faults_during_a_broadcast(fake_api: FakeBotAPI, polling_bot: BotApplication) -> None:
    """2% blocked, a 429 and a burst of 5xx: everyone else gets exactly one tip."""
    runtime = get_runtime(polling_bot)
    runtime.clock.set(NOON_BERLIN)
    users = list(range(10_001, 10_301))
    async with unit_of_work(runtime.sessions) as session:
        session.add_all(User(id=u, chat_id=u, timezone="UTC", focus_topics=[]) for u in users)
        await session.flush()
        session.add_all(
            Schedule(
                user_id=u,
                kind=ScheduleKind.DAILY_TIP,
                local_time=NOON_BERLIN.time(),
                timezone="UTC",
                next_run_at=NOON_BERLIN - timedelta(seconds=30),
            )
            for u in users
        )
    blocked = fake_api.block_fraction(users, 0.02, seed=3)
    fake_api.inject(RetryAfterFault(1), method="sendMessage")
    fake_api.inject(ServerErrorFault(502), method="sendMessage", times=5)
    runtime.delivery.sender.budget.rate = 500.0

    async def finished() -> bool:
        async with runtime.sessions() as session:
            open_claims = await session.scalar(
                select(func.count()).where(Delivery.status == DeliveryStatus.CLAIMED)
            )
            total = await session.scalar(select(func.count()).select_from(Delivery))
        return open_claims == 0 and total == len(users)

    for _ in range(200):
        await runtime.delivery.tick()
        await runtime.delivery.idle()
        if await finished():
            break
    async with runtime.sessions() as session:
        rows = await session.execute(select(Delivery.user_id, Delivery.status))
        statuses = dict(rows.all())
        inactive = set(await session.scalars(select(User.id).where(User.is_active.is_(False))))
    assert {u for u, s in statuses.items() if s == DeliveryStatus.BLOCKED} == set(blocked)
    assert inactive == set(blocked)
    for user in users:
        got = len(fake_api.sent_messages(user))
        assert got == (0 if user in blocked else 1), user
        attempts = [c for c in fake_api.calls_to("sendMessage") if c.params["chat_id"] == user]
        if user in blocked:
            assert len(attempts) == 1, "a blocked user is never retried"
    assert all(s == DeliveryStatus.SENT for u, s in statuses.items() if u not in blocked)
