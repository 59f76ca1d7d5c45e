"""The first conversations, through the real Application and the recording fake."""

from __future__ import annotations

import logging

import pytest
from sqlalchemy import select
from telegram.ext import CommandHandler

from bot.app import BotApplication
from bot.content import Content, visible_text
from bot.db.models import User
from bot.runtime import Runtime
from tests.fakes.telegram_api import FakeBotAPI
from tests.harness import ChatDriver


async def test_start_welcomes_a_new_user_and_stores_them(
    chat: ChatDriver, runtime: Runtime
) -> None:
    [reply] = await chat.command("/start")
    shown = visible_text(reply.text or "")
    assert "Hello, Alex, welcome to BackCalm" in shown
    assert "not a doctor" in shown
    assert "/redflags" in shown
    async with runtime.sessions() as session:
        user = await session.get(User, chat.user_id)
    assert user is not None
    assert user.chat_id == chat.user_id
    assert user.is_active
    assert user.language_code == "en"


async def test_start_again_welcomes_back(chat: ChatDriver) -> None:
    await chat.command("/start")
    [reply] = await chat.command("/start")
    assert "Welcome back, Alex" in visible_text(reply.text or "")


async def test_start_escapes_the_users_name(app: BotApplication, fake_api: FakeBotAPI) -> None:
    driver = ChatDriver(app, fake_api, user_id=2002, first_name="<b>Bo & Co</b>")
    [reply] = await driver.command("/start")
    assert "Hello, <b>Bo & Co</b>, welcome" in visible_text(reply.text or "")


async def test_help_lists_every_command_by_group(chat: ChatDriver, content: Content) -> None:
    [reply] = await chat.command("/help")
    shown = visible_text(reply.text or "")
    for group in content.command_groups:
        assert group.title in shown
        for command in group.commands:
            assert f"/{command.command} — {command.description}" in shown
    assert "not medical advice" in shown


async def test_privacy_says_what_is_stored_and_how_to_delete(chat: ChatDriver) -> None:
    [reply] = await chat.command("/privacy")
    shown = visible_text(reply.text or "")
    for words in ("What I store", "Why", "How long", "/export", "/delete"):
        assert words in shown


async def test_redflags_lists_emergency_and_urgent_signs(chat: ChatDriver) -> None:
    [reply] = await chat.command("/redflags")
    shown = visible_text(reply.text or "")
    assert "Get emergency help now" in shown
    assert "See a doctor today" in shown
    assert "bladder or bowels" in shown


async def test_unknown_command_points_to_help(chat: ChatDriver) -> None:
    [reply] = await chat.command("/frobnicate")
    shown = visible_text(reply.text or "")
    assert "/frobnicate" in shown
    assert "/help" in shown


async def test_plain_text_gets_a_helpful_answer(chat: ChatDriver) -> None:
    [reply] = await chat.send("hello there")
    assert "/help" in visible_text(reply.text or "")


@pytest.mark.parametrize(
    "message",
    [
        "I feel hopeless about this pain",
        "sometimes I want to die",
        "I’ve been thinking about suicide",
        "I keep wanting to HURT MYSELF",
    ],
)
async def test_crisis_words_get_crisis_resources_first(chat: ChatDriver, message: str) -> None:
    replies = await chat.send(message)
    shown = visible_text(replies[0].text or "")
    assert "A person can help you right now" in shown
    assert "findahelpline.com" in shown


async def test_crisis_resources_follow_the_users_language(
    app: BotApplication, fake_api: FakeBotAPI
) -> None:
    german = ChatDriver(app, fake_api, user_id=3003, language_code="de")
    [reply] = await german.send("Ich bin hopeless")
    shown = visible_text(reply.text or "")
    assert shown.index("TelefonSeelsorge") < shown.index("findahelpline.com")


@pytest.mark.parametrize(
    "message",
    [
        "I have saddle numbness since this morning",
        "my back hurts and I can't control my bladder",
        "both legs are numb",
    ],
)
async def test_red_flag_words_get_red_flag_guidance(chat: ChatDriver, message: str) -> None:
    replies = await chat.send(message)
    assert "Get emergency help now" in visible_text(replies[0].text or "")


@pytest.mark.parametrize("message", ["I feel hopeful today", "my saddle bag is heavy", "legs"])
async def test_ordinary_words_do_not_trigger_safety_texts(chat: ChatDriver, message: str) -> None:
    [reply] = await chat.send(message)
    shown = visible_text(reply.text or "")
    assert "emergency" not in shown.lower()
    assert "A person can help" not in shown


async def test_a_sticker_gets_a_pointer_to_help(chat: ChatDriver, fake_api: FakeBotAPI) -> None:
    update = fake_api.send_text(chat.user_id, "x")
    message = update["message"]
    del message["text"]
    message["sticker"] = {
        "file_id": "s1",
        "file_unique_id": "u1",
        "width": 512,
        "height": 512,
        "is_animated": False,
        "is_video": False,
        "type": "regular",
    }
    [reply] = await chat.feed(update)
    assert "only work with text" in visible_text(reply.text or "")


async def test_a_stale_button_is_answered_not_ignored(
    chat: ChatDriver, fake_api: FakeBotAPI
) -> None:
    [sent] = await chat.command("/start")
    update = fake_api.press_button(chat.user_id, sent.message_id, "v0:gone")
    await chat.feed(update)
    [answer] = fake_api.calls_to("answerCallbackQuery")
    assert "older message" in str(answer.params.get("text"))


async def test_in_a_group_only_start_and_help_answer(
    chat: ChatDriver, fake_api: FakeBotAPI
) -> None:
    group_id = -100123
    await chat.feed(
        fake_api.send_command(chat.user_id, "/start", chat_type="group", chat_id=group_id)
    )
    [reply] = fake_api.sent_messages(group_id)
    assert "private chat" in visible_text(reply.text or "")

    await chat.feed(
        fake_api.send_text(chat.user_id, "my pain today is 7", chat_type="group", chat_id=group_id)
    )
    assert len(fake_api.sent_messages(group_id)) == 1


async def test_a_failing_update_is_logged_and_the_bot_goes_on(
    app: BotApplication, chat: ChatDriver, caplog: pytest.LogCaptureFixture
) -> None:
    async def explode(*_: object) -> None:
        raise RuntimeError("kaboom")

    app.add_handler(CommandHandler("boom", explode), group=-1)
    caplog.set_level(logging.ERROR)
    replies = await chat.command("/boom")
    assert "something went wrong" in visible_text(replies[0].text or "")
    assert "kaboom" in caplog.text
    assert "Traceback" in caplog.text
    [reply] = await chat.command("/help")
    assert "What I can do" in visible_text(reply.text or "")


async def test_command_menu_is_registered_at_start_up(
    app: BotApplication, fake_api: FakeBotAPI, content: Content
) -> None:
    [call] = fake_api.calls_to("setMyCommands")
    registered = [c["command"] for c in call.params["commands"]]
    assert registered == [c.command for c in content.commands()]


async def test_blocking_deactivates_and_start_reactivates(
    chat: ChatDriver, fake_api: FakeBotAPI, runtime: Runtime
) -> None:
    await chat.command("/start")
    fake_api.block(chat.user_id)
    await chat.feed(fake_api.pending_updates()[-1])
    async with runtime.sessions() as session:
        user = await session.scalar(select(User).where(User.id == chat.user_id))
        assert user is not None
        assert not user.is_active
        assert user.blocked_at is not None
    fake_api.unblock(chat.user_id, notify=False)
    [reply] = await chat.command("/start")
    assert "Welcome back" in visible_text(reply.text or "")
    async with runtime.sessions() as session:
        user = await session.get(User, chat.user_id)
        assert user is not None
        assert user.is_active


async def test_crisis_lines_follow_the_country_chosen_in_settings(
    chat: ChatDriver, fake_api: FakeBotAPI
) -> None:
    [panel] = await chat.command("/settings")
    assert "Crisis lines for: your Telegram language decides" in visible_text(panel.text or "")
    await chat.press("🆘 Crisis lines country", panel.message_id)
    await chat.press("India", panel.message_id)
    assert "Crisis lines for: India" in visible_text(chat.last().text or "")
    [crisis] = await chat.send("I feel hopeless")
    shown = visible_text(crisis.text or "")
    assert shown.index("Tele-MANAS") < shown.index("findahelpline.com")
    await chat.press("🆘 Crisis lines country", panel.message_id)
    await chat.press("From my Telegram language", panel.message_id)
    [crisis] = await chat.send("I feel hopeless")
    assert "Tele-MANAS" not in visible_text(crisis.text or "")
