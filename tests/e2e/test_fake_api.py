"""Tests of the fake Bot API, driven by a real python-telegram-bot ``Bot``."""

from __future__ import annotations

import asyncio
import datetime as dtm
import html
import io
import logging
import signal
import struct
import sys
import textwrap
import time
import zlib
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from telegram import (
    Bot,
    BotCommand,
    ChatMember,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    Message,
    MessageEntity,
    Update,
)
from telegram.constants import ParseMode
from telegram.error import (
    BadRequest,
    Conflict,
    Forbidden,
    InvalidToken,
    NetworkError,
    RetryAfter,
    TelegramError,
    TimedOut,
)
from telegram.ext import ApplicationBuilder, CallbackQueryHandler, CommandHandler, ContextTypes
from telegram.request import HTTPXRequest

from tests.fakes.telegram_api import (
    NOT_MODIFIED,
    QUERY_TOO_OLD,
    TEST_TOKEN,
    BlockedFault,
    EntityParseError,
    FakeBotAPI,
    FakeBotAPIServer,
    FakeRequest,
    RetryAfterFault,
    ServerErrorFault,
    SlowFault,
    parse_html,
)

pytestmark = pytest.mark.e2e

USER = 501


def keyboard(*buttons: tuple[str, str]) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup([[InlineKeyboardButton(t, callback_data=d) for t, d in buttons]])


def ptb_message(description: str) -> str:
    """What PTB makes of a Telegram error description (it strips and re-capitalises)."""
    return TelegramError(description).message


def png(width: int, height: int) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    pixels = zlib.compress(b"".join(b"\x00" + b"\x80" * width for _ in range(height)))
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")
    )


@pytest.fixture(autouse=True)
def _timedelta_periods(monkeypatch: pytest.MonkeyPatch) -> None:
    # PTB 22 returns time periods (RetryAfter.retry_after) as timedelta without warnings.
    monkeypatch.setenv("PTB_TIMEDELTA", "true")


@pytest.fixture
def api() -> FakeBotAPI:
    return FakeBotAPI(TEST_TOKEN)


@pytest.fixture
async def server(api: FakeBotAPI) -> AsyncIterator[FakeBotAPIServer]:
    async with FakeBotAPIServer(api) as running:
        yield running


def http_bot(
    server: FakeBotAPIServer, *, read_timeout: float = 5.0, token: str = TEST_TOKEN
) -> Bot:
    return Bot(
        token,
        base_url=server.base_url,
        base_file_url=server.base_file_url,
        request=HTTPXRequest(read_timeout=read_timeout),
        get_updates_request=HTTPXRequest(),
    )


@pytest.fixture
async def bot(server: FakeBotAPIServer) -> AsyncIterator[Bot]:
    async with http_bot(server) as running:
        yield running


@pytest.fixture
async def local_bot(api: FakeBotAPI) -> AsyncIterator[Bot]:
    async with Bot(
        TEST_TOKEN, request=FakeRequest(api), get_updates_request=FakeRequest(api)
    ) as running:
        yield running


# ------------------------------------------------------------------------------ basics


async def test_get_me_over_http_and_in_process(bot: Bot, local_bot: Bot) -> None:
    for client in (bot, local_bot):
        me = await client.get_me()
        assert (me.id, me.username, me.is_bot) == (7000000001, "BackCalmTestBot", True)


async def test_wrong_token_is_rejected(server: FakeBotAPIServer) -> None:
    with pytest.raises(InvalidToken):
        await http_bot(server, token="42:" + "x" * 35).initialize()


async def test_raw_http_bodies_are_decoded_and_methods_are_case_insensitive(
    api: FakeBotAPI, server: FakeBotAPIServer
) -> None:
    url = f"{server.base_url}{TEST_TOKEN}"
    markup = {"inline_keyboard": [[{"text": "A", "callback_data": "a"}]]}
    async with httpx.AsyncClient() as client:
        form = await client.post(
            f"{url}/SENDMESSAGE",
            data={"chat_id": "5", "text": "123", "disable_notification": "true"},
        )
        as_json = await client.post(
            f"{url}/sendMessage", json={"chat_id": 5, "text": "hi", "reply_markup": markup}
        )
        query = await client.get(f"{url}/sendMessage", params={"chat_id": "5", "text": "q"})
        unknown = await client.post(f"{url}/sendTelepathy")
        bad_json = await client.post(
            f"{url}/sendMessage", data={"chat_id": 5, "text": "x", "reply_markup": "{"}
        )
    assert [form.status_code, as_json.status_code, query.status_code] == [200, 200, 200]
    assert unknown.json() == {"ok": False, "error_code": 404, "description": "Not Found"}
    assert bad_json.json()["description"] == (
        "Bad Request: can't parse reply keyboard markup JSON object"
    )
    first, second, _ = api.calls_to("sendMessage")[:3]
    assert first.params == {"chat_id": 5, "text": "123", "disable_notification": True}
    assert second.params["reply_markup"] == markup
    assert [m.text for m in api.sent_messages(5)] == ["123", "hi", "q"]


# ------------------------------------------------------------------------------ updates


async def test_long_poll_returns_update_arriving_mid_wait_and_offset_confirms(
    api: FakeBotAPI, bot: Bot
) -> None:
    poll = asyncio.create_task(bot.get_updates(timeout=5))
    await api.wait_for(lambda: api.waiting_pollers == 1)
    started = time.monotonic()
    api.send_text(USER, "hello", first_name="Sam")
    updates = await poll
    assert time.monotonic() - started < 1.0
    assert len(updates) == 1
    message = updates[0].message
    assert message is not None
    assert message.from_user is not None
    assert (message.text, message.chat.id, message.from_user.first_name) == ("hello", USER, "Sam")

    again = await bot.get_updates(timeout=0)
    assert [u.update_id for u in again] == [updates[0].update_id]  # not yet confirmed
    assert await bot.get_updates(offset=updates[0].update_id + 1, timeout=0) == ()
    assert api.pending_updates() == []

    started = time.monotonic()
    assert await bot.get_updates(timeout=1) == ()
    assert 0.9 <= time.monotonic() - started < 2.0


async def test_newer_poll_terminates_older_one(api: FakeBotAPI, bot: Bot) -> None:
    first = asyncio.create_task(bot.get_updates(timeout=5))
    await api.wait_for(lambda: api.waiting_pollers == 1)
    second = asyncio.create_task(bot.get_updates(timeout=5))
    with pytest.raises(Conflict, match="terminated by other getUpdates request"):
        await first
    api.send_text(USER, "late")
    assert [u.message.text for u in await second if u.message] == ["late"]


async def test_limit_allowed_updates_and_command_entity(api: FakeBotAPI, bot: Bot) -> None:
    api.send_command(USER, "start", "ref42")
    api.share_location(USER, 52.5, 13.4)
    api.send_raw_update({"message_reaction": {"chat": {"id": USER, "type": "private"}}})
    (command,) = await bot.get_updates(limit=1)
    assert command.message is not None
    assert command.message.text == "/start ref42"
    assert command.message.entities == (MessageEntity(MessageEntity.BOT_COMMAND, 0, 6),)
    rest = await bot.get_updates(offset=command.update_id + 1)
    assert len(rest) == 1  # the reaction is opt-in and dropped, like Telegram does
    assert rest[0].message is not None
    assert rest[0].message.location is not None
    assert rest[0].message.location.latitude == 52.5


# ------------------------------------------------------------------------------ sending


async def test_send_message_with_html_and_keyboard_round_trips(api: FakeBotAPI, bot: Bot) -> None:
    markup = keyboard(("Yes", "answer:yes"), ("No", "answer:no"))
    sent = await bot.send_message(
        USER, "<b>Hi</b> &amp; <i>welcome</i>", parse_mode=ParseMode.HTML, reply_markup=markup
    )
    assert sent.text == "Hi & welcome"
    assert sent.text_html == "<b>Hi</b> &amp; <i>welcome</i>"
    assert sent.reply_markup == markup
    assert sent.from_user is not None
    assert sent.from_user.is_bot
    assert sent.chat.id == USER
    second = await bot.send_message(USER, "again")
    assert second.message_id == sent.message_id + 1

    fake = api.sent_messages(USER)[0]
    assert (fake.text, fake.parse_mode, fake.plain_text) == (
        "<b>Hi</b> &amp; <i>welcome</i>",
        "HTML",
        "Hi & welcome",
    )
    assert fake.reply_markup == markup.to_dict()
    assert api.buttons(fake) == [("Yes", "answer:yes"), ("No", "answer:no")]
    assert api.calls_to("sendMessage")[0].params["chat_id"] == USER


@pytest.mark.parametrize(
    ("source", "problem"),
    [
        ("line<br>break", 'Unsupported start tag "br" at byte offset 4'),
        ("<b>open", 'Can\'t find end tag corresponding to start tag "b"'),
        ("1 < 2", 'Unsupported start tag "" at byte offset 2'),
        ("salt & pepper", 'Unescaped "&" (not a supported HTML entity) at byte offset 5'),
        ("x</b>", "Unexpected end tag at byte offset 1"),
        ("<b><i>x</b></i>", 'Unmatched end tag at byte offset 7, expected "</i>", found "</b>"'),
        ('<span class="x">s</span>', 'Tag "span" must have class "tg-spoiler" at byte offset 0'),
        ("&nbsp;", 'Unescaped "&" (not a supported HTML entity) at byte offset 0'),
    ],
)
async def test_bad_html_is_rejected_like_telegram(bot: Bot, source: str, problem: str) -> None:
    with pytest.raises(BadRequest) as caught:
        await bot.send_message(USER, source, parse_mode=ParseMode.HTML)
    assert caught.value.message == ptb_message(f"Bad Request: can't parse entities: {problem}")


async def test_all_supported_tags_parse(bot: Bot) -> None:
    source = (
        "<b>b</b><strong>s</strong><i>i</i><em>e</em><u>u</u><ins>n</ins><s>s</s>"
        '<strike>k</strike><del>d</del><span class="tg-spoiler">p</span><tg-spoiler>t</tg-spoiler>'
        '<a href="https://example.com/?a=1&b=2">l</a><code>c</code>'
        '<pre><code class="language-python">x = 1</code></pre>'
        "<blockquote>q</blockquote><blockquote expandable>x</blockquote>"
        '<tg-emoji emoji-id="5368324170671202286">👍</tg-emoji> &lt;&gt;&quot;&#39;&#x1F600;'
    )
    sent = await bot.send_message(USER, source, parse_mode=ParseMode.HTML)
    assert sent.text is not None
    assert sent.text.endswith(" <>\"'😀")
    kinds = [e.type for e in sent.entities]
    assert kinds.count(MessageEntity.BOLD) == 2
    assert MessageEntity.EXPANDABLE_BLOCKQUOTE in kinds
    assert MessageEntity.CUSTOM_EMOJI in kinds
    pre = next(e for e in sent.entities if e.type == MessageEntity.PRE)
    assert pre.language == "python"
    link = next(e for e in sent.entities if e.type == MessageEntity.TEXT_LINK)
    assert link.url == "https://example.com/?a=1&b=2"


async def test_length_is_measured_after_parsing(bot: Bot) -> None:
    tagged = "<b>abcd</b>e" * 800  # 4000 visible characters, 10400 source characters
    sent = await bot.send_message(USER, tagged, parse_mode=ParseMode.HTML)
    assert sent.text is not None
    assert len(sent.text) == 4000
    assert len(sent.entities) == 800
    entities_only = "&amp;" * 4096  # 4096 visible characters
    await bot.send_message(USER, entities_only, parse_mode=ParseMode.HTML)
    with pytest.raises(BadRequest) as caught:
        await bot.send_message(USER, "x" * 4097)
    assert caught.value.message == ptb_message("Bad Request: message is too long")
    with pytest.raises(BadRequest, match="Message is too long"):
        await bot.send_message(USER, "<i>" + "y" * 4097 + "</i>", parse_mode=ParseMode.HTML)


@pytest.mark.parametrize("text", ["", "   \n ", "<b></b>"])
async def test_empty_text_is_rejected(bot: Bot, text: str) -> None:
    with pytest.raises(BadRequest) as caught:
        await bot.send_message(USER, text, parse_mode=ParseMode.HTML)
    assert caught.value.message == ptb_message("Bad Request: message text is empty")


async def test_caption_limit(bot: Bot) -> None:
    await bot.send_document(USER, b"data", filename="a.txt", caption="c" * 1024)
    with pytest.raises(BadRequest) as caught:
        await bot.send_document(USER, b"data", filename="a.txt", caption="c" * 1025)
    assert caught.value.message == ptb_message("Bad Request: message caption is too long")


@pytest.mark.parametrize(
    ("data", "valid"),
    [("x" * 64, True), ("x" * 65, False), ("é" * 32, True), ("é" * 33, False), ("", False)],
)
async def test_callback_data_must_be_1_to_64_bytes(bot: Bot, data: str, valid: bool) -> None:
    send = bot.send_message(USER, "pick", reply_markup=keyboard(("A", data)))
    if valid:
        await send
        return
    with pytest.raises(BadRequest) as caught:
        await send
    assert caught.value.message == ptb_message("Bad Request: BUTTON_DATA_INVALID")


async def test_chat_not_found_without_auto_create(server: FakeBotAPIServer) -> None:
    server.api.auto_create_chats = False
    async with http_bot(server) as client:
        with pytest.raises(BadRequest, match="Chat not found"):
            await client.send_message(USER, "hi")
        server.api.send_text(USER, "hello")
        await client.send_message(USER, "hi")


# ------------------------------------------------------------------------------ editing


async def test_edit_rules(api: FakeBotAPI, bot: Bot) -> None:
    markup = keyboard(("Go", "go"))
    sent = await bot.send_message(USER, "<b>Step 1</b>", parse_mode="HTML", reply_markup=markup)

    with pytest.raises(BadRequest) as caught:
        await bot.edit_message_text(
            "<b>Step 1</b>", USER, sent.message_id, parse_mode="HTML", reply_markup=markup
        )
    assert caught.value.message == ptb_message(f"Bad Request: {NOT_MODIFIED}")
    # Different formatting of the same text is a modification.
    edited = await bot.edit_message_text("Step 1", USER, sent.message_id, reply_markup=markup)
    assert not isinstance(edited, bool)
    assert edited.entities == ()
    assert edited.edit_date is not None

    # Omitting reply_markup removes the keyboard, like Telegram does.
    edited = await bot.edit_message_text("Step 2", USER, sent.message_id)
    assert not isinstance(edited, bool)
    assert edited.reply_markup is None
    with pytest.raises(BadRequest, match="Message is not modified"):
        await bot.edit_message_reply_markup(USER, sent.message_id)
    await bot.edit_message_reply_markup(USER, sent.message_id, reply_markup=markup)

    with pytest.raises(BadRequest) as caught:
        await bot.edit_message_text("new", USER, 999)
    assert caught.value.message == ptb_message("Bad Request: message to edit not found")

    fake = api.last_bot_message(USER)
    assert (fake.text, fake.edits, api.buttons(fake)) == ("Step 2", 3, [("Go", "go")])


async def test_delete_and_chat_action(api: FakeBotAPI, bot: Bot) -> None:
    sent = await bot.send_message(USER, "bye")
    assert await bot.send_chat_action(USER, "typing")
    with pytest.raises(BadRequest, match="Wrong parameter action"):
        await bot.send_chat_action(USER, "dancing")
    assert await bot.delete_message(USER, sent.message_id)
    with pytest.raises(BadRequest, match="Message to delete not found"):
        await bot.delete_message(USER, sent.message_id)
    assert api.messages(USER) == []
    assert api.sent_messages(USER)[0].deleted


# ------------------------------------------------------------------------------ files


async def test_send_document_multipart_and_download(api: FakeBotAPI, bot: Bot) -> None:
    sent = await bot.send_document(
        USER, b"hello, back", filename="notes.txt", caption="<i>Notes</i>", parse_mode="HTML"
    )
    assert sent.document is not None
    assert (sent.document.file_name, sent.document.mime_type) == ("notes.txt", "text/plain")
    assert sent.document.file_size == 11
    assert sent.caption == "Notes"
    assert sent.caption_entities[0].type == MessageEntity.ITALIC

    (call,) = api.calls_to("sendDocument")
    assert call.files == ("document",)  # it really was a multipart upload
    fake = api.sent_messages(USER)[0]
    assert (fake.document, fake.document_name, fake.caption) == (
        b"hello, back",
        "notes.txt",
        "<i>Notes</i>",
    )

    telegram_file = await bot.get_file(sent.document.file_id)
    assert bytes(await telegram_file.download_as_bytearray()) == b"hello, back"

    with pytest.raises(BadRequest, match="File must be non-empty"):
        await bot.send_document(USER, b"", filename="empty.txt")


async def test_fake_request_uploads_and_downloads(api: FakeBotAPI, local_bot: Bot) -> None:
    sent = await local_bot.send_document(USER, io.BytesIO(b"in-process"), filename="log.csv")
    assert sent.document is not None
    assert api.calls_to("sendDocument")[0].files == ("document",)
    assert api.sent_messages(USER)[0].document_name == "log.csv"
    telegram_file = await local_bot.get_file(sent.document.file_id)
    assert bytes(await telegram_file.download_as_bytearray()) == b"in-process"


async def test_send_photo(api: FakeBotAPI, bot: Bot) -> None:
    image = png(64, 32)
    sent = await bot.send_photo(USER, image, caption="chart")
    photo = sent.photo[-1]
    assert (photo.width, photo.height, photo.file_size) == (64, 32, len(image))
    assert api.sent_messages(USER)[0].photo == image

    again = await bot.send_photo(USER, photo.file_id)  # by file_id: no upload
    assert again.photo[-1].file_unique_id == photo.file_unique_id
    assert api.calls_to("sendPhoto")[-1].files == ()

    with pytest.raises(BadRequest) as caught:
        await bot.send_photo(USER, b"not an image")
    assert caught.value.message == ptb_message("Bad Request: IMAGE_PROCESS_FAILED")


# ------------------------------------------------------------------------------ faults


async def test_injected_faults_surface_as_ptb_exceptions(api: FakeBotAPI, bot: Bot) -> None:
    api.inject(RetryAfterFault(7), method="sendMessage")
    with pytest.raises(RetryAfter) as flood:
        await bot.send_message(USER, "a")
    assert flood.value.retry_after == dtm.timedelta(seconds=7)

    api.inject(BlockedFault(), chat_id=2)
    await bot.send_message(1, "unaffected")
    with pytest.raises(Forbidden) as blocked:
        await bot.send_message(2, "b")
    assert blocked.value.message == "Forbidden: bot was blocked by the user"

    api.inject(ServerErrorFault(), times=2)
    for _ in range(2):
        with pytest.raises(NetworkError) as gateway:
            await bot.send_message(USER, "c")
        assert not isinstance(gateway.value, BadRequest)
        assert gateway.value.message == "Bad Gateway"
    api.inject(ServerErrorFault(500, "Internal Server Error"))
    with pytest.raises(NetworkError, match="Internal Server Error"):
        await bot.send_message(USER, "d")

    await bot.send_message(USER, "recovered")
    assert [m.text for m in api.sent_messages()] == ["unaffected", "recovered"]
    assert api.throttled_count == 1
    assert [c.status for c in api.calls_to("sendMessage")] == [429, 200, 403, 502, 502, 500, 200]


async def test_slow_fault_times_out_after_the_message_was_sent(
    api: FakeBotAPI, server: FakeBotAPIServer
) -> None:
    async with http_bot(server, read_timeout=0.2) as client:
        api.inject(SlowFault(0.6), method="sendMessage")
        with pytest.raises(TimedOut):
            await client.send_message(USER, "did it arrive?")
        assert [m.text for m in api.sent_messages(USER)] == ["did it arrive?"]

        api.inject(SlowFault(0.4, before_processing=True))
        with pytest.raises(TimedOut):
            await client.send_message(USER, "late")
        assert len(api.sent_messages(USER)) == 1
        await api.wait_for_bot_message(USER, contains="late", timeout=2)


async def test_slow_fault_through_fake_request(api: FakeBotAPI) -> None:
    async with Bot(TEST_TOKEN, request=FakeRequest(api, read_timeout=0.1)) as client:
        api.inject(SlowFault(0.3))
        with pytest.raises(TimedOut):
            await client.send_message(USER, "sent anyway")
        assert api.last_bot_message(USER).text == "sent anyway"


async def test_rate_limits(api: FakeBotAPI) -> None:
    limited = FakeBotAPI(TEST_TOKEN, enforce_limits=True, per_chat_rate=0.25)
    async with Bot(TEST_TOKEN, request=FakeRequest(limited)) as client:
        for chat in range(1, 31):
            await client.send_message(chat, "broadcast")
        with pytest.raises(RetryAfter) as global_limit:
            await client.send_message(31, "one too many")
        assert global_limit.value.retry_after == dtm.timedelta(seconds=1)

    per_chat = FakeBotAPI(TEST_TOKEN, enforce_limits=True, per_chat_rate=0.25, per_chat_burst=3)
    async with Bot(TEST_TOKEN, request=FakeRequest(per_chat)) as client:
        for _ in range(3):
            await client.send_message(USER, "burst")
        with pytest.raises(RetryAfter) as chat_limit:
            await client.send_message(USER, "too fast")
        assert chat_limit.value.retry_after == dtm.timedelta(seconds=4)
        await client.send_message(USER + 1, "other chats are fine")
        await client.send_chat_action(USER, "typing")  # not counted
    assert (limited.throttled_count, per_chat.throttled_count) == (1, 1)

    async with Bot(TEST_TOKEN, request=FakeRequest(api)) as client:  # limits off by default
        for _ in range(40):
            await client.send_message(USER, "unlimited")
    assert api.throttled_count == 0


# ------------------------------------------------------------------------------ the user side


async def test_block_and_unblock(api: FakeBotAPI, bot: Bot) -> None:
    api.send_text(USER, "hi")
    sent = await bot.send_message(USER, "hello")
    api.block(USER)
    with pytest.raises(Forbidden, match="bot was blocked by the user"):
        await bot.send_message(USER, "are you there?")
    with pytest.raises(Forbidden):
        await bot.edit_message_text("edited", USER, sent.message_id)

    updates = await bot.get_updates()
    change = updates[-1].my_chat_member
    assert change is not None
    assert change.chat.id == USER
    assert change.from_user.id == USER
    assert change.old_chat_member.status == ChatMember.MEMBER
    assert change.new_chat_member.status == ChatMember.BANNED

    api.unblock(USER)
    updates = await bot.get_updates(offset=updates[-1].update_id + 1)
    assert updates[-1].my_chat_member is not None
    assert updates[-1].my_chat_member.new_chat_member.status == ChatMember.MEMBER
    await bot.send_message(USER, "welcome back")

    chosen = api.block_fraction(range(1000, 1100), 0.02, seed=7)
    assert len(chosen) == 2
    assert chosen == FakeBotAPI(TEST_TOKEN).block_fraction(range(1000, 1100), 0.02, seed=7)
    assert api.blocked_users == frozenset(chosen)


async def test_press_produces_callback_query(api: FakeBotAPI, bot: Bot) -> None:
    sent = await bot.send_message(USER, "Feeling better?", reply_markup=keyboard(("Yes", "y")))
    await bot.send_message(USER, "(no buttons here)")
    with pytest.raises(AssertionError, match=r"available buttons: \[\]"):
        api.press(USER, "Yes")
    api.press(USER, "Yes", sent.message_id)
    with pytest.raises(AssertionError, match=r"available buttons: \[\('Yes', 'y'\)\]"):
        api.press(USER, "Maybe", sent.message_id)

    (update,) = await bot.get_updates()
    query = update.callback_query
    assert query is not None
    assert query.data == "y"
    assert query.from_user.id == USER
    assert isinstance(query.message, Message)
    assert query.message.message_id == sent.message_id
    assert query.message.text == "Feeling better?"
    assert query.message.reply_markup == keyboard(("Yes", "y"))

    assert await bot.answer_callback_query(query.id, text="Noted")
    assert api.callback_answers[query.id]["text"] == "Noted"
    for query_id in (query.id, "12345"):
        with pytest.raises(BadRequest) as caught:
            await bot.answer_callback_query(query_id)
        assert caught.value.message == ptb_message(f"Bad Request: {QUERY_TOO_OLD}")


async def test_commands_and_webhook(api: FakeBotAPI, bot: Bot) -> None:
    await bot.set_my_commands([BotCommand("start", "Begin"), BotCommand("tips", "Daily tip")])
    await bot.set_my_commands([BotCommand("start", "Anfangen")], language_code="de")
    assert [c.command for c in await bot.get_my_commands()] == ["start", "tips"]
    assert [c.description for c in await bot.get_my_commands(language_code="de")] == ["Anfangen"]
    with pytest.raises(BadRequest, match="Bot_command_invalid"):
        await bot.set_my_commands([BotCommand("Start!", "bad")])

    api.send_text(USER, "queued")
    assert await bot.set_webhook("https://example.com/hook")
    assert (await bot.get_webhook_info()).url == "https://example.com/hook"
    with pytest.raises(Conflict, match="webhook is active"):
        await bot.get_updates()
    assert await bot.delete_webhook(drop_pending_updates=True)
    assert await bot.get_updates() == ()


# ------------------------------------------------------------------------------ waiting


async def test_wait_helpers(api: FakeBotAPI, local_bot: Bot) -> None:
    waiter = asyncio.create_task(api.wait_for_bot_message(USER, count=2))
    await asyncio.sleep(0)
    await local_bot.send_message(USER, "one")
    await local_bot.send_message(USER + 1, "elsewhere")
    await local_bot.send_message(USER, "two")
    assert (await waiter).text == "two"

    with pytest.raises(AssertionError, match=r"sendMessage chat=502 -> 200"):
        await api.wait_for(lambda: False, timeout=0.05)
    with pytest.raises(AssertionError, match="containing 'three'"):
        await api.wait_for_bot_message(USER, contains="three", timeout=0.05)


async def test_application_through_fake_request(api: FakeBotAPI) -> None:
    async def start(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        assert update.effective_message is not None
        await update.effective_message.reply_html(
            "Welcome, <b>friend</b>", reply_markup=keyboard(("Go", "go"))
        )

    async def go(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        assert update.callback_query is not None
        await update.callback_query.answer()
        await update.callback_query.edit_message_text("Let's go")

    app = (
        ApplicationBuilder()
        .token(TEST_TOKEN)
        .request(FakeRequest(api))
        .get_updates_request(FakeRequest(api))
        .build()
    )
    app.add_handler(CommandHandler("start", start))
    app.add_handler(CallbackQueryHandler(go))
    async with app:
        await app.start()
        assert app.updater is not None
        await app.updater.start_polling(poll_interval=0)
        try:
            api.send_command(USER, "start")
            welcome = await api.wait_for_bot_message(USER, contains="Welcome")
            assert welcome.plain_text == "Welcome, friend"
            api.press(USER, "Go")
            await api.wait_for(lambda: api.last_bot_message(USER).edits == 1)
            assert api.last_bot_message(USER).text == "Let's go"
            assert len(api.callback_answers) == 1
        finally:
            await app.updater.stop()
            await app.stop()


POLLER = textwrap.dedent(
    """
    import asyncio, sys
    from telegram import Bot

    async def main() -> None:
        async with Bot(sys.argv[1], base_url=sys.argv[2]) as bot:
            await bot.get_updates(timeout=30, read_timeout=5)

    asyncio.run(main())
    """
)


async def test_server_survives_a_killed_polling_process(
    api: FakeBotAPI, server: FakeBotAPIServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", POLLER, TEST_TOKEN, server.base_url
    )
    try:
        await api.wait_for(lambda: api.waiting_pollers == 1, timeout=15)
    finally:
        process.send_signal(signal.SIGKILL)
        await process.wait()

    async with http_bot(server) as client:
        poll = asyncio.create_task(client.get_updates(timeout=5))
        await api.wait_for(lambda: len(api.calls_to("getUpdates")) == 1)  # the killed poll ends
        api.send_text(USER, "anyone home?")
        updates = await poll
    assert [u.message.text for u in updates if u.message] == ["anyone home?"]
    assert api.calls_to("getUpdates")[0].status == 409
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


# ------------------------------------------------------------------------------ the HTML parser


@settings(max_examples=200, deadline=None, database=None)
@given(st.text())
def test_escaped_text_parses_back_to_itself(text: str) -> None:
    assert parse_html(html.escape(text)).text == text
    parsed = parse_html(f"<b>{html.escape(text, quote=False)}</b>")
    assert parsed.text == text
    expected: list[dict[str, Any]] = (
        [{"type": "bold", "offset": 0, "length": len(text.encode("utf-16-le")) // 2}]
        if text
        else []
    )
    assert parsed.entities == expected


@pytest.mark.parametrize(
    ("source", "problem"),
    [
        ("<b>", "Can't find end tag"),
        ("<a href='x>y</a>", "Unclosed start tag at byte offset 0"),
        ("<blockquote quiet>q</blockquote>", "Expected equal sign"),
        ("&#0;", "byte offset 0"),
    ],
)
def test_parser_rejects_malformed_markup(source: str, problem: str) -> None:
    with pytest.raises(EntityParseError, match=problem):
        parse_html(source)
