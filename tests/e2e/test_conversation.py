"""A whole conversation with the real bot over HTTP, as a person would have it."""

from __future__ import annotations

import logging

import pytest

from bot.app import BotApplication
from bot.content import visible_text
from bot.logs import quiet_noisy_loggers
from tests.fakes.telegram_api import TEST_TOKEN, FakeBotAPI

USER = 4242


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

    texts = [visible_text(m.text or "") for m in fake_api.sent_messages(USER)]
    assert len(texts) == 4
    assert fake_api.calls_to("setMyCommands")
    assert caplog.records, "nothing was logged: the capture is not working"
    assert TEST_TOKEN not in caplog.text
    assert TEST_TOKEN.split(":")[1] not in caplog.text
