"""Topics: commands, the /topics menu, deep links, keyword suggestions and /sources."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from bot.content import Content, visible_length, visible_text
from bot.db.models import TipView, User
from bot.runtime import Runtime
from tests.fakes.telegram_api import FakeBotAPI, FakeMessage
from tests.harness import ChatDriver

TOPIC_COMMANDS = [
    "stress",
    "breathing",
    "mindfulness",
    "thoughts",
    "movement",
    "exercise",
    "sleep",
    "pacing",
    "flare",
    "mood",
    "social",
    "work",
    "smoking",
    "nutrition",
    "genes",
    "care",
]


def shown(message: FakeMessage) -> str:
    return visible_text(message.text or "")


def labels(api: FakeBotAPI, message: FakeMessage) -> list[str]:
    return [text for text, _ in api.buttons(message)]


def test_the_library_has_every_topic_the_issue_names(content: Content) -> None:
    assert set(TOPIC_COMMANDS) <= set(content.topics)
    assert len(content.topics) >= 17
    assert sum(len(t.tips) for t in content.topics.values()) >= 200
    for topic in content.topics.values():
        assert len(topic.tips) >= 12, topic.id
        assert visible_length(topic.overview) < 900, topic.id


@pytest.mark.parametrize("command", TOPIC_COMMANDS)
async def test_a_topic_command_gives_the_overview_then_a_fresh_tip(
    chat: ChatDriver, content: Content, command: str
) -> None:
    topic = content.topics[command]
    overview, tip = await chat.command(f"/{command}")
    assert topic.title in shown(overview)
    assert topic.overview[:60] in shown(overview)
    assert "Try this today" in shown(tip)
    assert topic.label in shown(tip)
    _, second = await chat.command(f"/{command}")
    assert second.text != tip.text, "a tip the user has not seen yet"


async def test_topics_menu_opens_a_topic_in_the_same_message(
    chat: ChatDriver, fake_api: FakeBotAPI, content: Content, runtime: Runtime
) -> None:
    [menu] = await chat.command("/topics")
    assert labels(fake_api, menu) == [t.label for t in content.topics.values()]
    sleep = content.topics["sleep"]
    await chat.press(sleep.label, menu.message_id)
    opened = chat.last()
    assert opened.message_id == menu.message_id
    assert sleep.overview[:40] in shown(opened)
    assert "Try this today" in shown(opened)
    assert labels(fake_api, opened) == [
        "🔄 Another tip",
        "🎯 Focus on this topic",
        "⬅️ Back to topics",
    ]
    first_text = opened.text
    await chat.press("🔄 Another tip", menu.message_id)
    assert chat.last().text != first_text
    await chat.press("🎯 Focus on this topic", menu.message_id)
    assert "✓ In your focus" in labels(fake_api, chat.last())
    await chat.press("⬅️ Back to topics", menu.message_id)
    assert labels(fake_api, chat.last()) == labels(fake_api, menu)
    assert len(fake_api.sent_messages(chat.user_id)) == 1, "all in one message"
    async with runtime.sessions() as session:
        user = await session.get(User, chat.user_id)
        views = list(await session.scalars(select(TipView.topic_id)))
    assert user is not None
    assert user.focus_topics == ["sleep"]
    assert views == ["sleep", "sleep"]


async def test_a_deep_link_opens_its_topic(chat: ChatDriver, content: Content) -> None:
    welcome, overview, tip = await chat.command("/start", "topic-sleep")
    assert "welcome to BackCalm" in shown(welcome)
    assert content.topics["sleep"].title in shown(overview)
    assert "Try this today" in shown(tip)
    replies = await chat.command("/start", "topic-pacing")
    assert len(replies) == 2, "a returning user goes straight to the topic"
    [only] = await chat.command("/start", "topic-nonsense")
    assert "Welcome back" in shown(only)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("can't sleep", "Sleep"),
        ("stressed at work", "Stress and pain"),
        ("my back hurts after sitting", None),
        ("I want to quit smoking", "Smoking"),
    ],
)
async def test_free_text_suggests_matching_topics(
    chat: ChatDriver, fake_api: FakeBotAPI, text: str, expected: str | None
) -> None:
    [suggestion] = await chat.send(text)
    assert "This might help" in shown(suggestion)
    buttons = labels(fake_api, suggestion)
    assert 1 <= len(buttons) <= 2
    if expected:
        assert any(expected in label for label in buttons)


async def test_safety_text_comes_before_topic_suggestions(chat: ChatDriver) -> None:
    replies = await chat.send("can't sleep and I can't control my bladder")
    assert "Get emergency help now" in shown(replies[0])
    assert "This might help" in shown(replies[-1])
    [crisis] = await chat.send("I can't sleep and I feel hopeless")
    assert "A person can help you right now" in shown(crisis)


async def test_sources_lists_the_bibliography_with_links(
    chat: ChatDriver, content: Content
) -> None:
    [listing] = await chat.command("/sources")
    for source in content.sources.values():
        assert source.title in shown(listing)
        if source.url:
            assert f'href="{source.url}"' in (listing.text or "")


async def test_help_and_the_command_menu_include_every_topic(
    chat: ChatDriver, fake_api: FakeBotAPI, content: Content
) -> None:
    [listing] = await chat.command("/help")
    for topic in content.topics.values():
        assert f"/{topic.id} — {topic.summary}" in shown(listing)
    [call] = fake_api.calls_to("setMyCommands")
    registered = {c["command"] for c in call.params["commands"]}
    assert set(content.topics) | {"topics", "sources", "redflags"} <= registered
