"""Every topic command, the menu, deep links and /sources through the real bot over HTTP."""

from __future__ import annotations

from bot.app import BotApplication
from bot.content import Content, visible_text
from tests.fakes.telegram_api import FakeBotAPI

USER = 9090


async def test_every_topic_command_and_the_menu_end_to_end(
    fake_api: FakeBotAPI, polling_bot: BotApplication, content: Content
) -> None:
    for topic in content.topics.values():
        before = len(fake_api.sent_messages(USER))
        fake_api.send_command(USER, f"/{topic.id}")
        tip = await fake_api.wait_for_bot_message(USER, count=2, timeout=10)
        overview = fake_api.sent_messages(USER)[before]
        assert topic.title in visible_text(overview.text or "")
        assert "Try this today" in visible_text(tip.text or "")

    fake_api.send_command(USER, "/redflags")
    await fake_api.wait_for_bot_message(USER, contains="emergency help")

    fake_api.send_command(USER, "/sources")
    await fake_api.wait_for_bot_message(USER, contains="NICE")

    fake_api.send_command(USER, "/topics")
    menu = await fake_api.wait_for_bot_message(USER, contains="Topics")
    fake_api.press(USER, content.topics["breathing"].label, menu.message_id)
    await fake_api.wait_for(
        lambda: "Try this today" in visible_text(fake_api.last_bot_message(USER).text or "")
    )
    assert fake_api.last_bot_message(USER).message_id == menu.message_id

    fake_api.send_command(USER + 1, "/start", "topic-flare")
    await fake_api.wait_for_bot_message(USER + 1, count=3, timeout=10)
    texts = [visible_text(m.text or "") for m in fake_api.sent_messages(USER + 1)]
    assert content.topics["flare"].title in texts[1]

    fake_api.send_text(USER + 2, "stressed at work")
    suggestion = await fake_api.wait_for_bot_message(USER + 2, contains="This might help")
    assert len(fake_api.buttons(suggestion)) == 2
