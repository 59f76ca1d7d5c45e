"""A whole conversation with the real bot over HTTP, as a person would have it."""

from __future__ import annotations

import logging

import pytest

from bot.app import BotApplication
from bot.content import visible_text
from bot.logs import quiet_noisy_loggers
from tests.fakes.telegram_api import TEST_TOKEN, FakeBotAPI, ServerErrorFault

USER = 4242
NOTE = "Walked-to-the-lighthouse-7731"


async def test_start_help_privacy_conversation(
    fake_api: FakeBotAPI, polling_bot: BotApplication, caplog: pytest.LogCaptureFixture
) -> None:
    quiet_noisy_loggers()
    caplog.set_level(logging.DEBUG)

    fake_api.send_command(USER, "/start")
    welcome = await fake_api.wait_for_bot_message(USER, contains="welcome to BackCalm")
    assert "/redflags" in visible_text(welcome.text or "")

    fake_api.send_command(USER, "/help")
    help_message = await fake_api.wait_for_bot_message(USER, contains="What I can do")
    assert "/privacy" in visible_text(help_message.text or "")

    fake_api.send_command(USER, "/privacy")
    privacy = await fake_api.wait_for_bot_message(USER, contains="Your privacy")
    assert "/delete" in visible_text(privacy.text or "")

    fake_api.send_command(USER, "/redflags")
    await fake_api.wait_for_bot_message(USER, contains="Get emergency help now")

    # A check-in with a note: consent first, then the quick form.
    fake_api.send_command(USER, "/checkin")
    consent = await fake_api.wait_for_bot_message(USER, contains="I agree")
    fake_api.press(USER, "✅ I agree", consent.message_id)
    await fake_api.wait_for(lambda: "1 of 5" in (fake_api.last_bot_message(USER).text or ""))
    fake_api.send_command(USER, "/checkin", f"5 6 {NOTE}")
    await fake_api.wait_for_bot_message(USER, contains="Check-in saved")

    # Telegram fails once: the bot logs it and goes on.
    fake_api.inject(ServerErrorFault(502), method="sendMessage", chat_id=USER)
    fake_api.send_command(USER, "/help")
    fake_api.send_command(USER, "/sources")
    await fake_api.wait_for_bot_message(USER, contains="Sources")

    assert any(r.levelno == logging.ERROR for r in caplog.records), "the failure was logged"
    assert TEST_TOKEN not in caplog.text
    assert TEST_TOKEN.split(":")[1] not in caplog.text
    assert NOTE not in caplog.text, "check-in content never reaches a log"
