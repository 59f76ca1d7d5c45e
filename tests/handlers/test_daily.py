"""Daily-tip conversations: subscribing, time zone, time, pause, settings, tips and feedback."""

from __future__ import annotations

from datetime import UTC, datetime, time

import pytest
from sqlalchemy import select

from bot.content import Content, visible_text
from bot.db.models import Feedback, Schedule, TipFeedback, TipView, User
from bot.runtime import Runtime
from tests.fakes.telegram_api import FakeBotAPI, FakeMessage
from tests.harness import ChatDriver

# 10:00 UTC is 12:00 in Berlin: today's 08:00 has passed.
NOW = datetime(2026, 6, 1, 10, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def fixed_clock(runtime: Runtime) -> None:
    runtime.clock.set(NOW)


def shown(message: FakeMessage) -> str:
    return visible_text(message.text or "")


def labels(api: FakeBotAPI, message: FakeMessage) -> list[str]:
    return [text for text, _ in api.buttons(message)]


async def schedule(runtime: Runtime, user_id: int) -> Schedule | None:
    async with runtime.sessions() as session:
        return await session.scalar(select(Schedule).where(Schedule.user_id == user_id))


async def test_subscribe_asks_for_zone_then_time_then_confirms(
    chat: ChatDriver, fake_api: FakeBotAPI, runtime: Runtime
) -> None:
    [ask] = await chat.command("/subscribe")
    assert "Where are you?" in shown(ask)
    assert ask.reply_markup is not None
    assert ask.reply_markup["keyboard"][0][0]["request_location"] is True

    zone_reply, time_question = await chat.command("/timezone", "berlin")
    assert "Europe/Berlin" in shown(zone_reply)
    assert "12:00 there now" in shown(zone_reply)
    assert "08:00 (suggested)" in labels(fake_api, time_question)

    await chat.press("08:00 (suggested)", time_question.message_id)
    confirmation = chat.last()
    assert confirmation.message_id == time_question.message_id, "edited in place"
    assert "Daily tips are on" in shown(confirmation)
    assert "tomorrow at 08:00 (Berlin time)" in shown(confirmation)
    row = await schedule(runtime, chat.user_id)
    assert row is not None
    assert row.active
    assert row.next_run_at == datetime(2026, 6, 2, 6, 0, tzinfo=UTC)

    [again] = await chat.command("/subscribe")
    assert "already get daily tips" in shown(again)


async def test_subscribe_with_zone_and_time_set_starts_at_once(chat: ChatDriver) -> None:
    await chat.command("/timezone", "Asia/Tokyo")
    await chat.command("/time", "21:15")
    [done] = await chat.command("/subscribe")
    assert "today at 21:15 (Tokyo time)" in shown(done)


@pytest.mark.parametrize(
    ("query", "zone"),
    [
        ("europe/berlin", "Europe/Berlin"),
        ("new york", "America/New_York"),
        ("India", "Asia/Kolkata"),
        ("UTC+2", "Etc/GMT-2"),
        ("+05:30", "Asia/Kolkata"),
    ],
)
async def test_timezone_accepts_names_cities_countries_and_offsets(
    chat: ChatDriver, runtime: Runtime, query: str, zone: str
) -> None:
    replies = await chat.command("/timezone", query)
    assert zone in shown(replies[0])
    async with runtime.sessions() as session:
        user = await session.get(User, chat.user_id)
    assert user is not None
    assert user.timezone == zone


async def test_timezone_near_miss_offers_buttons(chat: ChatDriver, fake_api: FakeBotAPI) -> None:
    [question] = await chat.command("/timezone", "berln")
    assert "Did you mean" in shown(question)
    choice = next(label for label in labels(fake_api, question) if "Berlin" in label)
    replies = await chat.press(choice, question.message_id)
    assert "Europe/Berlin" in shown(replies[0])


async def test_unknown_timezone_gets_examples(chat: ChatDriver) -> None:
    [answer] = await chat.command("/timezone", "Atlantis Prime")
    assert "couldn't find a time zone" in shown(answer)
    assert "/timezone UTC+2" in shown(answer)


async def test_shared_location_sets_the_zone_and_is_not_stored(
    chat: ChatDriver, fake_api: FakeBotAPI, runtime: Runtime
) -> None:
    replies = await chat.feed(fake_api.share_location(chat.user_id, 48.8566, 2.3522))
    assert "Europe/Paris" in shown(replies[0])
    assert replies[0].reply_markup == {"remove_keyboard": True}
    async with runtime.sessions() as session:
        user = await session.get(User, chat.user_id)
    assert user is not None
    assert "48.85" not in repr(vars(user))


@pytest.mark.parametrize("raw", ["8", "08:30", "8:30pm", "20.30"])
async def test_time_accepts_common_forms(chat: ChatDriver, runtime: Runtime, raw: str) -> None:
    await chat.command("/timezone", "Berlin")
    await chat.command("/time", raw)
    row = await schedule(runtime, chat.user_id)
    assert row is not None
    assert row.local_time in (time(8, 0), time(8, 30), time(20, 30))


@pytest.mark.parametrize("raw", ["25:00", "8:75", "soon", "13pm"])
async def test_a_bad_time_gets_examples_and_stores_nothing(
    chat: ChatDriver, runtime: Runtime, raw: str
) -> None:
    [answer] = await chat.command("/time", raw)
    assert "couldn't read" in shown(answer)
    assert "/time 8:30pm" in shown(answer)
    assert await schedule(runtime, chat.user_id) is None


async def test_time_change_states_the_next_tip(chat: ChatDriver) -> None:
    await chat.command("/timezone", "Berlin")
    await chat.command("/subscribe")
    await chat.press("08:00 (suggested)")
    [answer] = await chat.command("/time", "18:30")
    assert "today at 18:30 (Berlin time)" in shown(answer)


async def test_pause_resume_and_unsubscribe(chat: ChatDriver, runtime: Runtime) -> None:
    [not_yet] = await chat.command("/pause")
    assert "don't get daily tips" in shown(not_yet)
    await chat.command("/timezone", "Berlin")
    await chat.command("/time", "8")
    await chat.command("/subscribe")
    for bad in ("0", "91", "abc", "2 3"):
        [answer] = await chat.command("/pause", bad)
        assert "1 to 90" in shown(answer)
    [paused] = await chat.command("/pause", "3")
    assert "paused until Thursday 4 June" in shown(paused)
    row = await schedule(runtime, chat.user_id)
    assert row is not None
    assert row.next_run_at == datetime(2026, 6, 5, 6, 0, tzinfo=UTC)
    [resumed] = await chat.command("/resume")
    assert "back on" in shown(resumed)
    assert "tomorrow at 08:00" in shown(resumed)
    [off] = await chat.command("/unsubscribe")
    assert "/subscribe" in shown(off)
    row = await schedule(runtime, chat.user_id)
    assert row is not None
    assert row.next_run_at is None
    [again] = await chat.command("/unsubscribe")
    assert "don't get daily tips" in shown(again)


async def test_settings_change_in_place(
    chat: ChatDriver, fake_api: FakeBotAPI, runtime: Runtime
) -> None:
    await chat.command("/timezone", "Berlin")
    await chat.command("/subscribe")
    await chat.press("08:00 (suggested)")
    [panel] = await chat.command("/settings")
    assert "Europe/Berlin" in shown(panel)
    assert "08:00" in shown(panel)
    assert "on, next tomorrow at 08:00" in shown(panel)

    await chat.press("⏰ Tip time", panel.message_id)
    await chat.press("09:00", panel.message_id)
    assert "09:00" in shown(chat.last())
    await chat.press("⏸ Pause 7 days", panel.message_id)
    assert "paused until Monday 8 June" in shown(chat.last())
    await chat.press("▶️ Resume", panel.message_id)
    await chat.press("🎯 Focus topics", panel.message_id)
    sleep_label = next(label for label in labels(fake_api, chat.last()) if "Sleep" in label)
    await chat.press(sleep_label, panel.message_id)
    assert any(
        label.startswith("✓") and "Sleep" in label for label in labels(fake_api, chat.last())
    )
    await chat.press("⬅️ Back", panel.message_id)
    final = chat.last()
    assert final.message_id == panel.message_id
    assert "Focus topics: Sleep" in shown(final)
    assert len(fake_api.sent_messages(chat.user_id)) == 4, "settings never flood the chat"
    async with runtime.sessions() as session:
        user = await session.get(User, chat.user_id)
    assert user is not None
    assert user.focus_topics == ["sleep"]


async def test_tip_feedback_and_more(
    chat: ChatDriver, fake_api: FakeBotAPI, runtime: Runtime, content: Content
) -> None:
    [first] = await chat.command("/tip")
    assert "Try this today" in shown(first)
    assert labels(fake_api, first) == [
        "👍 Helpful",
        "👎 Not for me",
        "🔄 Another tip",
        labels(fake_api, first)[3],
    ]
    await chat.press("👍 Helpful", first.message_id)
    answer = fake_api.calls_to("answerCallbackQuery")[-1]
    assert "Thanks" in str(answer.params.get("text"))
    assert "👍 Helpful" not in labels(fake_api, chat.last())

    [second] = await chat.press("🔄 Another tip", first.message_id)
    assert second.text != first.text
    [third] = await chat.press(labels(fake_api, second)[3], second.message_id)
    async with runtime.sessions() as session:
        views = list(await session.scalars(select(TipView).order_by(TipView.id)))
        verdicts = list(await session.scalars(select(TipFeedback)))
    assert len(views) == 3
    assert len({v.tip_id for v in views}) == 3, "never the same tip twice"
    assert views[2].topic_id == views[1].topic_id, "More on this topic stays in the topic"
    assert [(v.tip_id, v.verdict) for v in verdicts] == [(views[0].tip_id, Feedback.HELPFUL)]
    await chat.press("👎 Not for me", third.message_id)
    async with runtime.sessions() as session:
        verdict = await session.scalar(
            select(TipFeedback.verdict).where(TipFeedback.tip_id == views[2].tip_id)
        )
    assert verdict == Feedback.NOT_FOR_ME


async def test_a_forged_button_is_answered_as_stale(chat: ChatDriver, fake_api: FakeBotAPI) -> None:
    [tip] = await chat.command("/tip")
    for data in ("fb:h:nosuch-01", "tz:Mars/Olympus", "set:explode", "focus:nosuch", "tip:nosuch"):
        await chat.feed(fake_api.press_button(chat.user_id, tip.message_id, data))
        answer = fake_api.calls_to("answerCallbackQuery")[-1]
        assert "older message" in str(answer.params.get("text")), data
