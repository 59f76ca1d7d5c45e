"""The due-scan engine: claim before send, one per local date, catch-up, and Telegram's faults."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import date, time, timedelta

import pytest
from sqlalchemy import select, update

from bot.content import Content, visible_text
from bot.db.engine import unit_of_work
from bot.db.models import Delivery, DeliveryStatus, Schedule, TipView, User, Worker
from bot.delivery.engine import FLUSH_SIZE, DeliveryEngine
from bot.services import subscriptions
from tests.delivery.conftest import MORNING, DeliveryHarness
from tests.fakes.telegram_api import RetryAfterFault, ServerErrorFault, SlowFault


async def deliveries(env: DeliveryHarness) -> list[Delivery]:
    async with env.sessions() as session:
        return list(await session.scalars(select(Delivery).order_by(Delivery.user_id)))


async def schedule_of(env: DeliveryHarness, user_id: int) -> Schedule:
    async with env.sessions() as session:
        row = await session.scalar(select(Schedule).where(Schedule.user_id == user_id))
    assert row is not None
    return row


async def test_a_due_tip_is_sent_once_and_the_schedule_moves_to_tomorrow(
    delivery: DeliveryHarness, content: Content
) -> None:
    await delivery.subscribe([1])
    await delivery.run()
    assert delivery.api.sent_messages(1) == [], "nothing is sent before its minute"

    delivery.clock.set(MORNING + timedelta(seconds=5))
    await delivery.run()
    [message] = delivery.api.sent_messages(1)
    assert "Try this today" in visible_text(message.text or "")
    assert [b[0] for b in delivery.api.buttons(message)][:2] == ["👍 Helpful", "👎 Not for me"]
    [record] = await deliveries(delivery)
    assert record.status == DeliveryStatus.SENT
    assert record.telegram_message_id == message.message_id
    assert record.local_date == date(2026, 6, 1)
    assert record.tip_id in content.tips
    assert (await schedule_of(delivery, 1)).next_run_at == MORNING + timedelta(days=1)
    async with delivery.sessions() as session:
        assert await session.scalar(select(TipView.tip_id)) == record.tip_id

    await delivery.run()
    assert len(delivery.api.sent_messages(1)) == 1


async def test_never_two_tips_on_one_local_date(delivery: DeliveryHarness) -> None:
    await delivery.subscribe([1])
    delivery.clock.set(MORNING + timedelta(seconds=5))
    await delivery.run()
    # The user moves their tip to 20:00 the same day: today's tip is already out.
    async with unit_of_work(delivery.sessions) as session:
        await subscriptions.set_tip_time(session, 1, time(20, 0), delivery.clock.now())
    delivery.clock.set(MORNING + timedelta(hours=12, seconds=5))
    await delivery.run()
    assert len(delivery.api.sent_messages(1)) == 1
    assert (await schedule_of(delivery, 1)).next_run_at == MORNING + timedelta(days=1, hours=12)


async def test_catch_up_after_downtime(delivery: DeliveryHarness) -> None:
    await delivery.subscribe([1], next_run_at=MORNING)
    await delivery.subscribe([2], next_run_at=MORNING - timedelta(hours=2))
    delivery.clock.set(MORNING + timedelta(hours=2))
    await delivery.run()
    records = {r.user_id: r for r in await deliveries(delivery)}
    assert records[1].status == DeliveryStatus.SENT, "2 h late: still sent"
    assert records[2].status == DeliveryStatus.SKIPPED, "4 h late: recorded as skipped"
    assert delivery.api.sent_messages(2) == []
    assert (await schedule_of(delivery, 2)).next_run_at == MORNING + timedelta(days=1)


async def test_a_blocked_user_is_deactivated_and_never_retried(delivery: DeliveryHarness) -> None:
    await delivery.subscribe([1, 2])
    delivery.api.block(2, notify=False)
    delivery.clock.set(MORNING + timedelta(seconds=5))
    await delivery.run()
    records = {r.user_id: r for r in await deliveries(delivery)}
    assert records[1].status == DeliveryStatus.SENT
    assert records[2].status == DeliveryStatus.BLOCKED
    attempts = [c for c in delivery.api.calls_to("sendMessage") if c.params["chat_id"] == 2]
    assert len(attempts) == 1
    async with delivery.sessions() as session:
        user = await session.get(User, 2)
    assert user is not None
    assert not user.is_active
    assert (await schedule_of(delivery, 2)).next_run_at is None
    delivery.clock.set(MORNING + timedelta(days=1, seconds=5))
    await delivery.run()
    assert len([c for c in delivery.api.calls_to("sendMessage") if c.params["chat_id"] == 2]) == 1


async def test_retry_after_pauses_then_delivers(delivery: DeliveryHarness) -> None:
    await delivery.subscribe([1])
    delivery.api.inject(RetryAfterFault(1), method="sendMessage")
    delivery.clock.set(MORNING + timedelta(seconds=5))
    await delivery.run()
    [record] = await deliveries(delivery)
    assert record.status == DeliveryStatus.SENT
    assert [c.status for c in delivery.api.calls_to("sendMessage")] == [429, 200]
    assert delivery.sender.retry_after_count == 1


async def test_server_errors_are_retried_a_bounded_number_of_times(
    delivery: DeliveryHarness,
) -> None:
    await delivery.subscribe([1, 2])
    delivery.api.inject(ServerErrorFault(502), method="sendMessage", chat_id=1, times=2)
    delivery.api.inject(
        ServerErrorFault(500, "Internal"), method="sendMessage", chat_id=2, times=99
    )
    delivery.clock.set(MORNING + timedelta(seconds=5))
    await delivery.run()
    records = {r.user_id: r for r in await deliveries(delivery)}
    assert records[1].status == DeliveryStatus.SENT
    assert records[2].status == DeliveryStatus.FAILED
    assert len(delivery.api.sent_messages(1)) == 1
    calls_2 = [c for c in delivery.api.calls_to("sendMessage") if c.params["chat_id"] == 2]
    assert len(calls_2) == delivery.sender.attempts


async def test_a_timeout_after_sending_is_unknown_and_not_resent(delivery: DeliveryHarness) -> None:
    await delivery.subscribe([1])
    delivery.api.inject(SlowFault(1.0), method="sendMessage")
    delivery.clock.set(MORNING + timedelta(seconds=5))
    await delivery.run()
    [record] = await deliveries(delivery)
    assert record.status == DeliveryStatus.UNKNOWN
    assert len(delivery.api.calls_to("sendMessage")) == 1
    assert len(delivery.api.sent_messages(1)) == 1, "Telegram had it: the user got it once"


async def test_claims_left_by_a_crash_are_recorded_as_unknown(make_delivery) -> None:  # type: ignore[no-untyped-def]
    async for env in make_delivery():
        await env.subscribe([1, 2])
        env.clock.set(MORNING + timedelta(seconds=5))
        claims, _ = await env.engine.claim(env.clock.now(), 10)  # claimed, never sent
        assert len(claims) == 2
        await env.engine.start()  # already started: nothing happens
        restarted = type(env.engine)(
            sessions=env.sessions, content=env.engine.content, sender=env.sender, clock=env.clock
        )
        env.clock.advance(timedelta(seconds=1))
        await restarted.start()
        await restarted.stop()
        assert {r.status for r in await deliveries(env)} == {DeliveryStatus.UNKNOWN}
        await env.run()
        assert env.api.sent_messages() == [], "an in-flight claim is never sent twice"


async def test_a_paused_user_gets_nothing_until_the_pause_ends(delivery: DeliveryHarness) -> None:
    await delivery.subscribe([1])
    async with unit_of_work(delivery.sessions) as session:
        await subscriptions.pause(session, 1, 2, delivery.clock.now())
    for day in range(3):
        delivery.clock.set(MORNING + timedelta(days=day, seconds=5))
        await delivery.run()
    assert len(delivery.api.sent_messages(1)) == 1
    [record] = await deliveries(delivery)
    assert record.local_date == date(2026, 6, 3)


async def test_inactive_schedules_are_not_due(delivery: DeliveryHarness) -> None:
    await delivery.subscribe([1, 2])
    async with unit_of_work(delivery.sessions) as session:
        await session.execute(update(Schedule).where(Schedule.user_id == 2).values(active=False))
    delivery.clock.set(MORNING + timedelta(seconds=5))
    await delivery.run()
    assert [r.user_id for r in await deliveries(delivery)] == [1]


async def test_engines_sharing_a_name_tick_at_the_same_time(delivery: DeliveryHarness) -> None:
    """Two engines under one name (one process, as in tests) both record their heartbeat."""
    twin = DeliveryEngine(
        sessions=delivery.sessions,
        content=delivery.engine.content,
        sender=delivery.sender,
        clock=delivery.clock,
        single_worker=False,
        name=delivery.engine.name,
    )
    started = delivery.clock.now()
    for _ in range(5):
        await asyncio.gather(delivery.engine.tick(), twin.tick())
    async with delivery.sessions() as session:
        [(name, last_tick)] = (
            await session.execute(select(Worker.name, Worker.last_tick_at))
        ).all()
    assert name == delivery.engine.name
    assert started <= last_tick <= delivery.clock.now()


async def test_claims_that_cannot_be_prepared_are_handed_back(
    delivery: DeliveryHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A failure between the claim and the queue leaves nothing claimed: the tips go later."""
    await delivery.subscribe([1, 2])
    delivery.clock.set(MORNING + timedelta(seconds=5))

    async def broken(claims: object) -> list[object]:
        raise ConnectionError("database went away")

    monkeypatch.setattr(delivery.engine, "prepare", broken)
    with pytest.raises(ConnectionError):
        await delivery.engine.tick()
    assert await deliveries(delivery) == []
    assert (await schedule_of(delivery, 1)).next_run_at == MORNING

    monkeypatch.undo()
    await delivery.run()
    assert len(delivery.api.sent_messages(1)) == len(delivery.api.sent_messages(2)) == 1
    assert {r.status for r in await deliveries(delivery)} == {DeliveryStatus.SENT}


async def test_sending_goes_on_while_outcomes_wait_for_the_database(
    delivery: DeliveryHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Outcomes are written in the background: a slow database does not hold up the sends."""
    people = range(1, FLUSH_SIZE + 51)
    await delivery.subscribe(people)
    delivery.clock.set(MORNING + timedelta(seconds=5))
    database_free = asyncio.Event()
    write = delivery.engine._write_outcomes

    async def slow(results: list[object]) -> None:
        await database_free.wait()
        await write(results)  # type: ignore[arg-type]

    monkeypatch.setattr(delivery.engine, "_write_outcomes", slow)
    await delivery.engine.tick()
    await delivery.api.wait_for(lambda: len(delivery.api.sent_messages()) == len(people))
    database_free.set()
    await delivery.engine.idle()
    records = await deliveries(delivery)
    assert len(records) == len(people)
    assert {r.status for r in records} == {DeliveryStatus.SENT}


async def test_outcomes_are_kept_when_writing_them_fails(
    delivery: DeliveryHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A failed write is tried again: no outcome is lost, no tip view is written twice."""
    await delivery.subscribe([1, 2, 3])
    delivery.clock.set(MORNING + timedelta(seconds=5))
    write = delivery.engine._write_outcomes
    failures = 0

    async def flaky(results: list[object]) -> None:
        nonlocal failures
        if not failures:
            failures += 1
            raise ConnectionError("database went away")
        await write(results)  # type: ignore[arg-type]

    monkeypatch.setattr(delivery.engine, "_write_outcomes", flaky)
    await delivery.engine.tick()
    with contextlib.suppress(ConnectionError):
        await delivery.engine.idle()  # the failure lands here or in the background writer
    await delivery.engine.idle()
    assert failures == 1
    assert {r.status for r in await deliveries(delivery)} == {DeliveryStatus.SENT}
    async with delivery.sessions() as session:
        views = list(await session.scalars(select(TipView.user_id).order_by(TipView.user_id)))
    assert views == [1, 2, 3]
