"""Check-ins: consent, the guided flow in one message, the quick form, safety, history, trends."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from bot.app import BotApplication
from bot.charts import DayPoint
from bot.content import visible_text
from bot.db.models import Base, CheckIn, CheckInDraft, User
from bot.handlers import checkin as checkin_handlers
from bot.runtime import Runtime
from tests.fakes.telegram_api import FakeBotAPI, FakeMessage
from tests.harness import ChatDriver

NOW = datetime(2026, 6, 10, 9, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def fixed_clock(runtime: Runtime) -> None:
    runtime.clock.set(NOW)


def shown(message: FakeMessage) -> str:
    return visible_text(message.text or message.caption or "")


def labels(api: FakeBotAPI, message: FakeMessage) -> list[str]:
    return [text for text, _ in api.buttons(message)]


async def agree(chat: ChatDriver) -> FakeMessage:
    [consent] = await chat.command("/checkin")
    await chat.press("✅ I agree", consent.message_id)
    return chat.last()


async def stored(runtime: Runtime, user_id: int) -> list[CheckIn]:
    async with runtime.sessions() as session:
        return list(await session.scalars(select(CheckIn).where(CheckIn.user_id == user_id)))


async def test_nothing_is_stored_before_consent(chat: ChatDriver, runtime: Runtime) -> None:
    [consent] = await chat.command("/checkin")
    text = shown(consent)
    for words in ("What I store", "Why", "How long", "/export", "/delete", "I agree"):
        assert words in text
    await chat.press("Not now", consent.message_id)
    assert "nothing was stored" in shown(chat.last())
    replies = await chat.command("/checkin", "6 4")
    assert "I need your OK" in shown(replies[0])
    assert await stored(runtime, chat.user_id) == []
    async with runtime.sessions() as session:
        user = await session.get(User, chat.user_id)
    assert user is not None
    assert user.checkin_consent_at is None


async def test_guided_checkin_in_one_edited_message(
    chat: ChatDriver, fake_api: FakeBotAPI, runtime: Runtime
) -> None:
    step = await agree(chat)
    assert "1 of 5" in shown(step)
    assert labels(fake_api, step)[:11] == [str(v) for v in range(11)]
    await chat.press("6", step.message_id)
    assert "2 of 5" in shown(chat.last())
    assert "Pain 6" in shown(chat.last())
    await chat.press("7", step.message_id)
    await chat.press("⬅️ Back", step.message_id)
    assert "2 of 5" in shown(chat.last())
    await chat.press("4", step.message_id)
    assert labels(fake_api, chat.last())[:5] == ["😣", "🙁", "😐", "🙂", "😄"]
    await chat.press("🙂", step.message_id)
    await chat.press("2", step.message_id)
    assert "5 of 5" in shown(chat.last())
    replies = await chat.send("walked 20 min by the river")
    assert chat.api.last_bot_message(chat.user_id)
    saved = next(m for m in fake_api.sent_messages(chat.user_id) if m.message_id == step.message_id)
    assert "Check-in saved" in shown(saved)
    assert "Pain 6" in shown(saved)
    assert len([m for m in replies if "This might help" in shown(m)]) == 0, "the note is not chat"
    assert any("Try this today" in shown(m) for m in replies), "a matched tip follows"
    [row] = await stored(runtime, chat.user_id)
    async with runtime.sessions() as session:
        assert (await session.scalars(select(CheckInDraft))).all() == []
    keyring = runtime.keys.get()
    data = keyring.decrypt_json(row.payload, aad=f"checkin:{chat.user_id}".encode())
    assert data == {
        "pain": 6,
        "stress": 4,
        "mood": 4,
        "sleep": 2,
        "note": "walked 20 min by the river",
    }


async def test_cancel_and_skip(chat: ChatDriver, runtime: Runtime) -> None:
    step = await agree(chat)
    await chat.press("✖️ Cancel", step.message_id)
    assert "Nothing was saved" in shown(chat.last())
    assert await stored(runtime, chat.user_id) == []
    [step] = await chat.command("/checkin")
    for value in ("3", "3", "😐", "4"):
        await chat.press(value, step.message_id)
    await chat.press("Skip ⏭", step.message_id)
    [row] = await stored(runtime, chat.user_id)
    assert row.local_date.isoformat() == "2026-06-10"


async def test_a_half_done_checkin_survives_a_restart_and_expires(
    chat: ChatDriver, fake_api: FakeBotAPI, app: BotApplication, runtime: Runtime
) -> None:
    step = await agree(chat)
    await chat.press("5", step.message_id)
    # A new Application on the same database and fake: the draft is still there.
    from bot.app import build_application

    other = build_application(
        runtime.settings, runtime.content, role="updates", request=app.bot.request
    )
    await other.initialize()
    assert other.post_init is not None
    await other.post_init(other)
    try:
        from bot.app import get_runtime

        get_runtime(other).clock.set(NOW + timedelta(minutes=10))
        resumed = ChatDriver(other, fake_api, user_id=chat.user_id)
        await resumed.press("2", step.message_id)
        assert "3 of 5" in shown(resumed.last())
        get_runtime(other).clock.set(NOW + timedelta(minutes=45))
        await resumed.press("😐", step.message_id)
        assert "expired" in shown(resumed.last())
    finally:
        assert other.post_shutdown is not None
        await other.post_shutdown(other)
        await other.shutdown()


async def test_an_old_step_message_is_stale(chat: ChatDriver, fake_api: FakeBotAPI) -> None:
    first = await agree(chat)
    [second] = await chat.command("/checkin")
    await chat.feed(fake_api.press_button(chat.user_id, first.message_id, "ck:pain:3"))
    assert "older message" in str(fake_api.calls_to("answerCallbackQuery")[-1].params.get("text"))
    await chat.feed(fake_api.press_button(chat.user_id, second.message_id, "ck:mood:3"))
    assert "older message" in str(fake_api.calls_to("answerCallbackQuery")[-1].params.get("text"))


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ("6 4", {"pain": 6, "stress": 4}),
        (
            "pain=6 stress=4 mood=3 sleep=2 walked 20 min",
            {"pain": 6, "stress": 4, "mood": 3, "sleep": 2, "note": "walked 20 min"},
        ),
        ("3 2 4 5", {"pain": 3, "stress": 2, "mood": 4, "sleep": 5}),
        ("mood=2", {"mood": 2}),
    ],
)
async def test_quick_form(
    chat: ChatDriver, runtime: Runtime, args: str, expected: dict[str, object]
) -> None:
    await agree(chat)
    replies = await chat.command("/checkin", args)
    assert "Check-in saved" in shown(replies[0])
    [row] = await stored(runtime, chat.user_id)
    assert (
        runtime.keys.get().decrypt_json(row.payload, aad=f"checkin:{chat.user_id}".encode())
        == expected
    )


@pytest.mark.parametrize(
    ("args", "complaint"),
    [
        ("11 4", "Pain goes from 0 to 10"),
        ("pain=6 mood=9", "Mood goes from 1 to 5"),
        ("hello there", "couldn't read"),
        ("pain=abc", "couldn't read"),
        ("energy=5", 'don\'t know "energy"'),
        ("6 4 " + "x" * 600, "longer than 500"),
    ],
)
async def test_a_bad_quick_form_stores_nothing(
    chat: ChatDriver, runtime: Runtime, args: str, complaint: str
) -> None:
    await agree(chat)
    [answer] = await chat.command("/checkin", args)
    assert complaint in shown(answer)
    assert await stored(runtime, chat.user_id) == []


async def test_change_since_last_checkin(chat: ChatDriver, runtime: Runtime) -> None:
    await agree(chat)
    runtime.clock.set(NOW - timedelta(days=1))  # Tuesday 9 June
    await chat.command("/checkin", "7 5")
    runtime.clock.set(NOW)
    replies = await chat.command("/checkin", "6 5")
    assert "Pain 6, down 1 since yesterday · stress 5, the same as yesterday" in shown(replies[0])


@pytest.mark.parametrize(
    "args",
    ["9 3", "10 2", "4 3 saddle numbness since this morning", "5 5 I can't control my bladder"],
)
async def test_red_flags_come_first(chat: ChatDriver, args: str) -> None:
    await agree(chat)
    replies = await chat.command("/checkin", args)
    assert "Get emergency help now" in shown(replies[0])
    assert "Check-in saved" in shown(replies[1])


@pytest.mark.parametrize("note", ["I feel hopeless", "I want to die", "thinking about self-harm"])
async def test_crisis_words_in_a_note_come_first(chat: ChatDriver, note: str) -> None:
    await agree(chat)
    replies = await chat.command("/checkin", f"5 5 {note}")
    assert "A person can help you right now" in shown(replies[0])
    assert not any("Try this today" in shown(m) for m in replies)


async def test_three_low_moods_in_a_row_get_a_gentle_message(
    chat: ChatDriver, fake_api: FakeBotAPI
) -> None:
    await agree(chat)
    await chat.command("/checkin", "mood=2")
    await chat.command("/checkin", "mood=1")
    replies = await chat.command("/checkin", "mood=3")
    assert not any("mood has been low" in shown(m) for m in replies)
    await chat.command("/checkin", "mood=2")
    await chat.command("/checkin", "mood=1")
    replies = await chat.command("/checkin", "mood=2")
    gentle = next(m for m in replies if "mood has been low" in shown(m))
    assert "counsellor" in shown(gentle)
    assert labels(fake_api, gentle) == ["💛 Pain and mood"]


async def test_a_matched_tip_follows_the_answers(chat: ChatDriver) -> None:
    await agree(chat)
    replies = await chat.command("/checkin", "2 2 4 1")
    tip = next(m for m in replies if "Try this today" in shown(m))
    assert "Sleep" in shown(tip)
    replies = await chat.command("/checkin", "8 3")
    tip = next(m for m in replies if "Try this today" in shown(m))
    assert "Flare-up" in shown(tip)


async def test_history_and_trends(chat: ChatDriver, runtime: Runtime, fake_api: FakeBotAPI) -> None:
    [empty] = await chat.command("/history")
    assert "No check-ins" in shown(empty)
    [empty] = await chat.command("/trends")
    assert "No check-ins yet" in shown(empty)
    await agree(chat)
    for day in range(12):
        runtime.clock.set(NOW - timedelta(days=day))
        stress = 8 if day % 2 else 2
        pain = 7 if day % 2 else 3
        await chat.command("/checkin", f"{pain} {stress} 3 3" + (" note" if day == 0 else ""))
    runtime.clock.set(NOW)
    [table] = await chat.command("/history")
    text = table.text or ""
    assert "<pre>" in text
    lines = shown(table).splitlines()
    assert (
        sum(1 for line in lines if line[:3] in {"Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"})
        == 12
    )
    assert "✎" in shown(table)
    [chart] = await chat.command("/trends")
    assert chart.photo is not None
    assert chart.photo.startswith(b"\x89PNG")
    assert "higher-stress days your pain averaged 7.0; on calmer days, 3.0" in shown(chart)


async def test_trends_says_how_many_more_days_it_needs(chat: ChatDriver, runtime: Runtime) -> None:
    await agree(chat)
    for day in range(3):
        runtime.clock.set(NOW - timedelta(days=day))
        await chat.command("/checkin", "5 5")
    runtime.clock.set(NOW)
    [chart] = await chat.command("/trends")
    assert "After 7 more days" in shown(chart)


async def test_trends_draws_its_first_means_from_the_week_before(
    chat: ChatDriver, runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The chart gets the 6 days before its 30 (for the first 7-day means); the caption's
    averages and day count cover the 30 days only."""
    drawn: list[list[DayPoint]] = []
    render = checkin_handlers.render_trends

    def spy(points: list[DayPoint], *args: object, **kwargs: object) -> bytes:
        drawn.append(list(points))
        return render(points, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(checkin_handlers, "render_trends", spy)
    await agree(chat)
    for days_ago, pain in ((40, 1), (33, 9), (31, 9), (29, 2), (0, 4)):
        runtime.clock.set(NOW - timedelta(days=days_ago))
        await chat.command("/checkin", f"{pain} 5")
    runtime.clock.set(NOW)
    [chart] = await chat.command("/trends")
    assert [point.pain for point in drawn[0]] == [9, 9, 2, 4], "35 days: not the one 40 days ago"
    assert "(2 days with check-ins)" in shown(chart)
    assert "Average pain 3.0 · stress 5.0" in shown(chart)  # pain (2 + 4) / 2


async def test_the_database_file_holds_no_note_and_no_scores(
    chat: ChatDriver, runtime: Runtime
) -> None:
    await agree(chat)
    note = "Zanzibar-unique-note-text"
    await chat.command("/checkin", f"pain=7 stress=3 mood=2 sleep=4 {note}")
    # Every row of every table, as the database returns it.
    dumped = []
    async with runtime.sessions() as session:
        for table in Base.metadata.sorted_tables:
            dumped += [repr(tuple(row)) for row in await session.execute(table.select())]
    everything = "\n".join(dumped)
    assert note not in everything
    assert '"pain"' not in everything
    url = runtime.settings.database_url
    if url.startswith("sqlite"):  # and the file itself, WAL included
        await runtime.engine.dispose()
        folder = Path(url.split("///", 1)[1]).parent
        raw = b"".join(p.read_bytes() for p in folder.glob("backcalm.db*"))
        assert raw, "the database file was not found"
        assert note.encode() not in raw
        assert b'"pain"' not in raw
