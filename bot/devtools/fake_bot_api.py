"""An in-memory test double of Telegram's Bot API.

Three layers:

* :class:`FakeBotAPI` holds all state (chats, messages, updates, files, faults) and answers
  Bot API calls through :meth:`FakeBotAPI.handle`. It also plays the user (``send_text``,
  ``press`` ...) and offers assertions helpers (``sent_messages``, ``wait_for`` ...).
* :class:`FakeBotAPIServer` exposes a :class:`FakeBotAPI` over HTTP (aiohttp) so that a real
  PTB ``Bot`` - in this process or in another one - can talk to it via ``base_url``.
  While a webhook is set, the fake pushes queued updates to it like Telegram does (see
  :attr:`FakeBotAPI.webhook_deliveries` and :meth:`FakeBotAPI.post_to_webhook`).
* :class:`FakeRequest` plugs a :class:`FakeBotAPI` straight into PTB as a ``BaseRequest``,
  skipping the network for fast handler tests.

Both transports hand the raw request fields (every value a string for form/multipart bodies,
native JSON values for JSON bodies) to :meth:`FakeBotAPI.handle`, which decodes them once
with :func:`decode_params`.

Deliberate deviations from Telegram: a bare ``&`` that does not start one of the supported
HTML entities is rejected (Telegram would show it literally); Markdown parse modes are
accepted without validation; only PNG, JPEG and GIF photos are understood. Webhooks may use
``http://`` and any port (Telegram wants HTTPS on 443, 80, 88 or 8443); updates are pushed one at
a time whatever ``max_connections`` says, and a failed push is retried (with a backoff capped at
``webhook_max_retry_delay``) until it succeeds, where Telegram gives up after a while.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import math
import mimetypes
import random
import re
import struct
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Any, Final, Self
from urllib.parse import unquote, urlsplit

from aiohttp import ClientError, ClientSession, ClientTimeout, web
from telegram._utils.defaultvalue import DefaultValue
from telegram.error import TimedOut
from telegram.request import BaseRequest, RequestData

if TYPE_CHECKING:
    from types import TracebackType

    from telegram._utils.types import ODVInput

__all__ = [
    "BLOCKED",
    "MAX_CALLBACK_DATA_BYTES",
    "MAX_CAPTION_LENGTH",
    "MAX_TEXT_LENGTH",
    "NOT_MODIFIED",
    "QUERY_TOO_OLD",
    "SECRET_TOKEN_HEADER",
    "TEST_TOKEN",
    "BlockedFault",
    "EntityParseError",
    "FakeBotAPI",
    "FakeBotAPIServer",
    "FakeMessage",
    "FakeRequest",
    "Fault",
    "FormattedText",
    "RecordedCall",
    "RetryAfterFault",
    "ServerErrorFault",
    "SlowFault",
    "StoredFile",
    "UploadedFile",
    "WebhookDelivery",
    "decode_params",
    "parse_html",
]

TEST_TOKEN: Final = "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw_"

MAX_TEXT_LENGTH: Final = 4096
MAX_CAPTION_LENGTH: Final = 1024
MAX_CALLBACK_DATA_BYTES: Final = 64

NOT_MODIFIED: Final = (
    "message is not modified: specified new message content and reply markup are exactly "
    "the same as a current content and reply markup of the message"
)
QUERY_TOO_OLD: Final = "query is too old and response timeout expired or query ID is invalid"
BLOCKED: Final = "Forbidden: bot was blocked by the user"
POLL_CONFLICT: Final = (
    "Conflict: terminated by other getUpdates request; "
    "make sure that only one bot instance is running"
)
WEBHOOK_CONFLICT: Final = (
    "Conflict: can't use getUpdates method while webhook is active; "
    "use deleteWebhook to delete the webhook first"
)

# The header Telegram puts the setWebhook ``secret_token`` in, on every update it pushes.
SECRET_TOKEN_HEADER: Final = "X-Telegram-Bot-Api-Secret-Token"
_SECRET_TOKEN_RE: Final = re.compile(r"[A-Za-z0-9_-]*")
_MAX_SECRET_TOKEN_LENGTH: Final = 256

_RATE_LIMITED_METHODS: Final = frozenset({"sendMessage", "sendPhoto", "sendDocument"})
# Update types Telegram delivers when allowed_updates was never set (or reset with []).
_OPT_IN_UPDATES: Final = frozenset({"chat_member", "message_reaction", "message_reaction_count"})
_CHAT_ACTIONS: Final = frozenset(
    [
        "typing",
        "upload_photo",
        "record_video",
        "upload_video",
        "record_voice",
        "upload_voice",
        "upload_document",
        "choose_sticker",
        "find_location",
        "record_video_note",
        "upload_video_note",
    ]
)
_BUTTON_ACTIONS: Final = frozenset(
    [
        "url",
        "callback_data",
        "web_app",
        "login_url",
        "switch_inline_query",
        "switch_inline_query_current_chat",
        "switch_inline_query_chosen_chat",
        "copy_text",
        "callback_game",
        "pay",
    ]
)
_COMMAND_RE: Final = re.compile(r"[a-z0-9_]{1,32}")
_API_PATH_RE: Final = re.compile(r"/bot(?P<token>[^/]+)/(?P<method>[^/]+)")
_FILE_PATH_RE: Final = re.compile(r"/file/bot(?P<token>[^/]+)/(?P<path>.+)")


# --------------------------------------------------------------------------------------------
# Request decoding
# --------------------------------------------------------------------------------------------

_INT_PARAMS: Final = frozenset(
    [
        "chat_id",
        "message_id",
        "offset",
        "limit",
        "timeout",
        "cache_time",
        "message_thread_id",
        "max_connections",
        "reply_to_message_id",
        "user_id",
    ]
)
_BOOL_PARAMS: Final = frozenset(
    [
        "disable_notification",
        "protect_content",
        "show_alert",
        "drop_pending_updates",
        "disable_web_page_preview",
        "disable_content_type_detection",
        "allow_sending_without_reply",
        "allow_paid_broadcast",
        "has_spoiler",
        "show_caption_above_media",
    ]
)
# JSON-serialised parameters and the noun Telegram uses when it can't parse them.
_JSON_PARAMS: Final = {
    "reply_markup": "reply keyboard markup",
    "entities": "entities",
    "caption_entities": "caption entities",
    "commands": "commands",
    "allowed_updates": "allowed updates",
    "link_preview_options": "link preview options",
    "reply_parameters": "reply parameters",
    "scope": "bot command scope",
    "media": "media",
}


class _ApiError(Exception):
    """An error response of the Bot API."""

    def __init__(
        self, status: int, description: str, parameters: dict[str, Any] | None = None
    ) -> None:
        super().__init__(description)
        self.status = status
        self.description = description
        self.parameters = parameters

    def envelope(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "ok": False,
            "error_code": self.status,
            "description": self.description,
        }
        if self.parameters:
            body["parameters"] = self.parameters
        return body


def _bad_request(description: str) -> _ApiError:
    return _ApiError(400, f"Bad Request: {description}")


def _retry_after(seconds: int) -> _ApiError:
    return _ApiError(429, f"Too Many Requests: retry after {seconds}", {"retry_after": seconds})


def _to_int(name: str, value: object) -> int | str:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    try:
        return int(str(value))
    except ValueError:
        if name == "chat_id" and isinstance(value, str):
            return value  # "@channelusername"
        raise _bad_request(f"invalid {name} specified") from None


def _to_bool(name: str, value: object) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "1"):
        return True
    if text in ("false", "0", ""):
        return False
    raise _bad_request(f"invalid {name} specified")


def _to_json(name: str, value: object) -> Any:
    if not isinstance(value, str):
        return value
    try:
        return json.loads(value)
    except ValueError:
        raise _bad_request(f"can't parse {_JSON_PARAMS[name]} JSON object") from None


def decode_params(raw: Mapping[str, object]) -> dict[str, Any]:
    """Decode request fields the way Telegram does, whatever body type carried them.

    Form and multipart bodies carry every value as a string (PTB JSON-encodes objects,
    numbers and booleans but sends plain strings as they are); JSON bodies carry native
    values. Known integer and boolean parameters are coerced, known object parameters are
    parsed from JSON, everything else (text, caption, parse_mode ...) stays as given.
    The function is idempotent. Raises ``_ApiError`` (400) on malformed values.
    """
    params: dict[str, Any] = {}
    for name, value in raw.items():
        if name in _INT_PARAMS:
            params[name] = _to_int(name, value)
        elif name in _BOOL_PARAMS:
            params[name] = _to_bool(name, value)
        elif name in _JSON_PARAMS:
            params[name] = _to_json(name, value)
        else:
            params[name] = value
    return params


# --------------------------------------------------------------------------------------------
# HTML parse mode
# --------------------------------------------------------------------------------------------


class EntityParseError(ValueError):
    """Raised by :func:`parse_html` with Telegram's (tdlib's) wording of the problem."""


@dataclass(frozen=True)
class FormattedText:
    """Text as the user sees it plus the Bot API ``MessageEntity`` dicts describing it."""

    text: str
    entities: list[dict[str, Any]] = field(default_factory=list)


_TAG_ENTITY_TYPES: Final = {
    "b": "bold",
    "strong": "bold",
    "i": "italic",
    "em": "italic",
    "u": "underline",
    "ins": "underline",
    "s": "strikethrough",
    "strike": "strikethrough",
    "del": "strikethrough",
    "span": "spoiler",
    "tg-spoiler": "spoiler",
    "code": "code",
    "pre": "pre",
    "blockquote": "blockquote",
    "a": "text_link",
    "tg-emoji": "custom_emoji",
}
_SUPPORTED_TAGS: Final = frozenset(_TAG_ENTITY_TYPES)
_NAMED_ENTITIES: Final = {"lt": "<", "gt": ">", "amp": "&", "quot": '"'}
_HTML_ENTITY_RE: Final = re.compile(r"&(?:#(\d{1,8})|#[xX]([0-9a-fA-F]{1,8})|(lt|gt|amp|quot));")
_SPACES: Final = " \t\r\n\v\f"


def _utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def _decode_html_entity(match: re.Match[str]) -> str | None:
    decimal, hexadecimal, named = match.groups()
    if named:
        return _NAMED_ENTITIES[named]
    code_point = int(decimal) if decimal else int(hexadecimal, 16)
    if 0 < code_point <= 0x10FFFF and not 0xD800 <= code_point <= 0xDFFF:
        return chr(code_point)
    return None


@dataclass
class _OpenTag:
    name: str
    offset: int  # UTF-16 offset in the parsed text where the tag's content starts
    attributes: dict[str, str]
    expandable: bool = False
    language: str | None = None


class _HtmlParser:
    """A port of tdlib's HTML entity parser, restricted to what the Bot API documents."""

    def __init__(self, source: str) -> None:
        self._src = source
        self._pos = 0
        self._chunks: list[str] = []
        self._utf16 = 0
        self._open: list[_OpenTag] = []
        self._entities: list[dict[str, Any]] = []

    def parse(self) -> FormattedText:
        while self._pos < len(self._src):
            char = self._src[self._pos]
            if char == "&":
                self._append(self._entity())
            elif char == "<":
                if self._src.startswith("</", self._pos):
                    self._end_tag()
                else:
                    self._start_tag()
            else:
                self._append(char)
                self._pos += 1
        if self._open:
            raise EntityParseError(
                f'Can\'t find end tag corresponding to start tag "{self._open[-1].name}"'
            )
        entities = sorted(self._entities, key=lambda e: (e["offset"], -e["length"]))
        return FormattedText("".join(self._chunks), entities)

    def _append(self, text: str) -> None:
        self._chunks.append(text)
        self._utf16 += _utf16_len(text)

    def _error(self, message: str, index: int) -> EntityParseError:
        byte_offset = len(self._src[:index].encode())
        return EntityParseError(f"{message} at byte offset {byte_offset}")

    def _entity(self) -> str:
        match = _HTML_ENTITY_RE.match(self._src, self._pos)
        char = _decode_html_entity(match) if match else None
        if match is None or char is None:
            raise self._error('Unescaped "&" (not a supported HTML entity)', self._pos)
        self._pos = match.end()
        return char

    def _skip_spaces(self, index: int) -> int:
        while index < len(self._src) and self._src[index] in _SPACES:
            index += 1
        return index

    def _scan_name(self, index: int, stop: str) -> int:
        while index < len(self._src) and self._src[index] not in _SPACES + stop:
            index += 1
        return index

    def _start_tag(self) -> None:
        begin = self._pos
        end = self._scan_name(begin + 1, ">")
        if end >= len(self._src):
            raise self._error("Unclosed start tag", begin)
        name = self._src[begin + 1 : end].lower()
        if name not in _SUPPORTED_TAGS:
            raise self._error(f'Unsupported start tag "{name}"', begin)
        tag = _OpenTag(name, self._utf16, {})
        self._pos = self._attributes(tag, begin, end) + 1
        css_class = tag.attributes.get("class", "")
        if name == "span" and css_class != "tg-spoiler":
            raise self._error('Tag "span" must have class "tg-spoiler"', begin)
        if name == "code" and css_class.startswith("language-"):
            tag.language = css_class.removeprefix("language-")
        if name == "tg-emoji" and not tag.attributes.get("emoji-id"):
            raise self._error("Custom emoji entity must contain a custom emoji identifier", begin)
        self._open.append(tag)

    def _attributes(self, tag: _OpenTag, begin: int, index: int) -> int:
        """Parse attributes up to the closing '>' of a start tag; return its index."""
        src = self._src
        while True:
            index = self._skip_spaces(index)
            if index >= len(src):
                raise self._error("Unclosed start tag", begin)
            if src[index] == ">":
                return index
            name_end = self._scan_name(index, "=>")
            attribute = src[index:name_end].lower()
            if not attribute:
                raise self._error(f'Empty attribute name in the tag "{tag.name}"', begin)
            index = self._skip_spaces(name_end)
            if index >= len(src) or src[index] != "=":
                if tag.name == "blockquote" and attribute == "expandable":
                    tag.expandable = True
                    continue
                raise self._error(
                    f'Expected equal sign in declaration of an attribute of the tag "{tag.name}"',
                    begin,
                )
            index = self._skip_spaces(index + 1)
            if index >= len(src):
                raise self._error("Unclosed start tag", begin)
            if src[index] in "'\"":
                value_end = src.find(src[index], index + 1)
                if value_end < 0:
                    raise self._error("Unclosed start tag", begin)
                raw_value = src[index + 1 : value_end]
                # Like Telegram, an '&' that is no entity stays literal inside attributes.
                value = _HTML_ENTITY_RE.sub(lambda m: _decode_html_entity(m) or m[0], raw_value)
                index = value_end + 1
            else:
                value_end = index
                while value_end < len(src) and (src[value_end].isalnum() or src[value_end] in ".-"):
                    value_end += 1
                if value_end == index:
                    raise self._error(
                        "Expected quotation mark in declaration of an attribute of the tag "
                        f'"{tag.name}"',
                        begin,
                    )
                value = src[index:value_end].lower()
                index = value_end
            tag.attributes[attribute] = value

    def _end_tag(self) -> None:
        begin = self._pos
        name_end = self._scan_name(begin + 2, ">")
        name = self._src[begin + 2 : name_end].lower()
        close = self._skip_spaces(name_end)
        if not self._open:
            raise self._error("Unexpected end tag", begin)
        if close >= len(self._src) or self._src[close] != ">":
            raise self._error("Unclosed end tag", begin)
        tag = self._open.pop()
        if name and name != tag.name:
            raise EntityParseError(
                f"Unmatched end tag at byte offset {len(self._src[:begin].encode())}, "
                f'expected "</{tag.name}>", found "</{name}>"'
            )
        self._pos = close + 1
        self._close(tag)

    def _close(self, tag: _OpenTag) -> None:
        parent = self._open[-1] if self._open else None
        if tag.name == "code" and parent is not None and parent.name == "pre":
            # <pre><code class="language-x">...</code></pre> is one pre entity.
            parent.language = tag.language or parent.language
            return
        length = self._utf16 - tag.offset
        if length == 0:
            return
        entity: dict[str, Any] = {
            "type": _TAG_ENTITY_TYPES[tag.name],
            "offset": tag.offset,
            "length": length,
        }
        if tag.name == "a":
            if not tag.attributes.get("href"):
                return
            entity["url"] = tag.attributes["href"]
        elif tag.name == "pre" and tag.language:
            entity["language"] = tag.language
        elif tag.name == "blockquote" and tag.expandable:
            entity["type"] = "expandable_blockquote"
        elif tag.name == "tg-emoji":
            entity["custom_emoji_id"] = tag.attributes["emoji-id"]
        self._entities.append(entity)


def parse_html(source: str) -> FormattedText:
    """Parse Telegram's HTML parse mode; raise :class:`EntityParseError` like Telegram."""
    return _HtmlParser(source).parse()


# --------------------------------------------------------------------------------------------
# Images
# --------------------------------------------------------------------------------------------

_JPEG_SOF_MARKERS: Final = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    index = 2
    while index + 9 <= len(data):
        if data[index] != 0xFF:
            return None
        marker = data[index + 1]
        if marker in _JPEG_SOF_MARKERS:
            height, width = struct.unpack(">HH", data[index + 5 : index + 9])
            return width, height
        (segment_length,) = struct.unpack(">H", data[index + 2 : index + 4])
        index += 2 + segment_length
    return None


def _image_size(data: bytes) -> tuple[int, int] | None:
    """Width and height of a PNG, JPEG or GIF image, ``None`` if it is none of those."""
    if data.startswith(b"\x89PNG\r\n\x1a\n") and data[12:16] == b"IHDR":
        width, height = struct.unpack(">II", data[16:24])
        return int(width), int(height)
    if data[:6] in (b"GIF87a", b"GIF89a") and len(data) >= 10:
        width, height = struct.unpack("<HH", data[6:10])
        return int(width), int(height)
    if data.startswith(b"\xff\xd8"):
        return _jpeg_size(data)
    return None


# --------------------------------------------------------------------------------------------
# Public data classes
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class UploadedFile:
    """One file part of a multipart request."""

    filename: str
    content_type: str
    data: bytes


@dataclass(frozen=True)
class StoredFile:
    """A file the fake knows: uploaded bytes (``None`` if sent by URL) and its identifiers."""

    kind: str  # "photo" or "document"
    file_id: str
    file_unique_id: str
    file_path: str
    data: bytes | None
    file_name: str | None = None
    mime_type: str | None = None
    width: int = 0
    height: int = 0

    @property
    def file_size(self) -> int | None:
        return None if self.data is None else len(self.data)


@dataclass
class FakeMessage:
    """A message in a fake chat, as created by the bot or by a (fake) user.

    ``text``/``caption`` are what the sender submitted (e.g. HTML source);
    ``plain_text`` and ``entities`` are what Telegram made of it (what the user sees).
    """

    message_id: int
    chat_id: int
    date: int
    text: str | None = None
    caption: str | None = None
    parse_mode: str | None = None
    reply_markup: dict[str, Any] | None = None
    photo: bytes | None = None
    document: bytes | None = None
    document_name: str | None = None
    edits: int = 0
    from_bot: bool = True
    user_id: int | None = None
    plain_text: str | None = None
    entities: list[dict[str, Any]] = field(default_factory=list)
    file_id: str | None = None
    location: tuple[float, float] | None = None
    reply_to_message_id: int | None = None
    edit_date: int | None = None
    deleted: bool = False
    raw: dict[str, Any] | None = None  # the Message object of user messages, as delivered

    def contains(self, fragment: str) -> bool:
        """Whether the submitted or the visible text/caption contains ``fragment``."""
        candidates = (self.text, self.caption, self.plain_text)
        return any(fragment in candidate for candidate in candidates if candidate is not None)


@dataclass(frozen=True)
class RecordedCall:
    """One Bot API call as the fake answered it."""

    method: str
    params: dict[str, Any]
    status: int
    time: float  # time.monotonic() when answered
    chat_id: int | None = None
    files: tuple[str, ...] = ()
    description: str | None = None

    @property
    def ok(self) -> bool:
        return self.status == 200

    def summary(self) -> str:
        chat = f" chat={self.chat_id}" if self.chat_id is not None else ""
        outcome = f"{self.status}" + (f" {self.description}" if self.description else "")
        return f"{self.method}{chat} -> {outcome}"


@dataclass(frozen=True)
class WebhookDelivery:
    """One attempt of the fake to push an update to the webhook, as Telegram makes them."""

    url: str
    update_id: int
    status: int | None  # the HTTP status; None when no answer came (refused, timed out ...)
    time: float  # time.monotonic() when the attempt ended
    error: str | None = None  # what getWebhookInfo reports as last_error_message

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


# --------------------------------------------------------------------------------------------
# Faults
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Fault:
    """Base class of the faults :meth:`FakeBotAPI.inject` accepts."""

    def _error(self) -> _ApiError | None:
        return None


@dataclass(frozen=True)
class RetryAfterFault(Fault):
    """429 flood-wait with ``parameters.retry_after`` (PTB raises ``RetryAfter``)."""

    seconds: int

    def _error(self) -> _ApiError:
        return _retry_after(self.seconds)


@dataclass(frozen=True)
class BlockedFault(Fault):
    """One-off 403 "bot was blocked by the user" (PTB raises ``Forbidden``)."""

    def _error(self) -> _ApiError:
        return _ApiError(403, BLOCKED)


@dataclass(frozen=True)
class ServerErrorFault(Fault):
    """A 5xx answer (PTB raises ``NetworkError``)."""

    status: int = 502
    description: str = "Bad Gateway"

    def _error(self) -> _ApiError:
        return _ApiError(self.status, self.description)


@dataclass(frozen=True)
class SlowFault(Fault):
    """Delay the answer by ``seconds``.

    By default the call is processed first and only the response is late, so a client that
    times out has still "sent" the message. With ``before_processing=True`` the fake waits
    before processing (the message appears only after the delay, even if the client gave up).
    """

    seconds: float
    before_processing: bool = False


@dataclass
class _PendingFault:
    fault: Fault
    method: str | None  # lower-case; None matches every method except getUpdates
    chat_id: int | None
    remaining: int

    def matches(self, method: str, chat_id: int | None) -> bool:
        method_ok = method != "getUpdates" if self.method is None else self.method == method.lower()
        return method_ok and (self.chat_id is None or self.chat_id == chat_id)


# --------------------------------------------------------------------------------------------
# Internals: change notification, rate limiting, users and chats
# --------------------------------------------------------------------------------------------


def _wake(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


class _ChangeSignal:
    """Wakes every waiter on each state change; safe across event loops and threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._waiters: set[asyncio.Future[None]] = set()

    def notify(self) -> None:
        with self._lock:
            waiters, self._waiters = self._waiters, set()
        try:
            current: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            current = None
        for future in waiters:
            loop = future.get_loop()
            if loop is current:
                _wake(future)
            elif not loop.is_closed():
                loop.call_soon_threadsafe(_wake, future)

    async def wait_for(self, check: Callable[[], bool], within: float) -> bool:
        """Return True as soon as ``check()`` holds, False once ``within`` seconds passed."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while True:
            future: asyncio.Future[None] = loop.create_future()
            with self._lock:
                self._waiters.add(future)
            try:
                if check():
                    return True
                remaining = deadline - loop.time()
                if remaining <= 0:
                    return False
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(remaining):
                        await future
            finally:
                with self._lock:
                    self._waiters.discard(future)


class _RateLimiter:
    """Telegram-like flood control: a global sliding window plus a token bucket per chat."""

    def __init__(self, global_rate: int, per_chat_rate: float, per_chat_burst: int) -> None:
        self._global_rate = global_rate
        self._per_chat_rate = per_chat_rate
        self._per_chat_burst = per_chat_burst
        self._window: deque[float] = deque()
        self._buckets: dict[int, tuple[float, float]] = {}

    def acquire(self, chat_id: int | None) -> int | None:
        """Take a slot; return None if allowed, else the seconds to wait."""
        now = time.monotonic()
        while self._window and now - self._window[0] >= 1.0:
            self._window.popleft()
        if len(self._window) >= self._global_rate:
            return 1
        if chat_id is not None:
            tokens, last = self._buckets.get(chat_id, (float(self._per_chat_burst), now))
            tokens = min(float(self._per_chat_burst), tokens + (now - last) * self._per_chat_rate)
            if tokens < 1.0:
                self._buckets[chat_id] = (tokens, now)
                return max(1, math.ceil((1.0 - tokens) / self._per_chat_rate))
            self._buckets[chat_id] = (tokens - 1.0, now)
        self._window.append(now)
        return None


def _without_none(data: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in data.items() if value is not None}


@dataclass
class _User:
    id: int
    first_name: str = "Alex"
    language_code: str | None = "en"
    username: str | None = None
    last_name: str | None = None

    def to_json(self) -> dict[str, Any]:
        return _without_none(
            {
                "id": self.id,
                "is_bot": False,
                "first_name": self.first_name,
                "last_name": self.last_name,
                "username": self.username,
                "language_code": self.language_code,
            }
        )


@dataclass
class _Chat:
    id: int
    type: str
    first_name: str | None = None
    last_name: str | None = None
    username: str | None = None
    title: str | None = None

    def to_json(self) -> dict[str, Any]:
        return _without_none(
            {
                "id": self.id,
                "type": self.type,
                "title": self.title,
                "username": self.username,
                "first_name": self.first_name,
                "last_name": self.last_name,
            }
        )


_Handler = Callable[[dict[str, Any], Mapping[str, UploadedFile]], Awaitable[Any]]


# --------------------------------------------------------------------------------------------
# The fake Bot API
# --------------------------------------------------------------------------------------------


class FakeBotAPI:
    """In-memory Bot API: state, strict validation, faults, rate limits and the user's side."""

    def __init__(
        self,
        token: str,
        *,
        bot_id: int = 7000000001,
        bot_username: str = "BackCalmTestBot",
        clock: Callable[[], float] = time.time,
        enforce_limits: bool = False,
        global_rate: int = 30,
        per_chat_rate: float = 1.0,
        per_chat_burst: int = 3,
        auto_create_chats: bool = True,
        webhook_retry_delay: float = 0.05,
        webhook_max_retry_delay: float = 1.0,
        webhook_timeout: float = 10.0,
    ) -> None:
        """``webhook_retry_delay`` is the pause after the first failed push of an update; it
        doubles with each further failure up to ``webhook_max_retry_delay``. A push that gets
        no answer within ``webhook_timeout`` seconds counts as failed."""
        self.token = token
        self.bot_id = bot_id
        self.bot_username = bot_username
        self.enforce_limits = enforce_limits
        self.auto_create_chats = auto_create_chats
        self._clock = clock
        self._limiter = _RateLimiter(global_rate, per_chat_rate, per_chat_burst)
        self._signal = _ChangeSignal()

        self.calls: list[RecordedCall] = []
        self.throttled_count = 0
        self.callback_answers: dict[str, dict[str, Any]] = {}

        self._users: dict[int, _User] = {}
        self._chats: dict[int, _Chat] = {}
        self._blocked: set[int] = set()
        self._history: dict[int, list[FakeMessage]] = {}
        self._message_index: dict[tuple[int, int], FakeMessage] = {}
        self._last_message_id: dict[int, int] = {}
        self._bot_messages: list[FakeMessage] = []
        self._files: dict[str, StoredFile] = {}
        self._files_by_path: dict[str, StoredFile] = {}
        self._file_counter = 0
        self._pending_queries: set[str] = set()
        self._query_counter = 0
        self._faults: list[_PendingFault] = []
        self._commands: dict[tuple[str, str], list[dict[str, str]]] = {}
        self._webhook_url = ""
        self._webhook_secret: str | None = None
        self._webhook_max_connections = 40
        self._webhook_last_error: tuple[int, str] | None = None
        self._webhook_task: asyncio.Task[None] | None = None
        self._webhook_retry_delay = webhook_retry_delay
        self._webhook_max_retry_delay = webhook_max_retry_delay
        self._webhook_timeout = webhook_timeout
        self.webhook_deliveries: list[WebhookDelivery] = []

        self._updates: list[dict[str, Any]] = []
        self._last_update_id = 100_000
        self._allowed_updates: frozenset[str] | None = None
        self._poll_generation = 0
        self._poll_epoch = 0
        self._waiting_pollers = 0

        handlers: dict[str, _Handler] = {
            "getMe": self._get_me,
            "getUpdates": self._get_updates,
            "sendMessage": self._send_message,
            "editMessageText": self._edit_message_text,
            "editMessageCaption": self._edit_message_caption,
            "editMessageReplyMarkup": self._edit_message_reply_markup,
            "answerCallbackQuery": self._answer_callback_query,
            "sendPhoto": self._send_photo,
            "sendDocument": self._send_document,
            "getFile": self._get_file,
            "setMyCommands": self._set_my_commands,
            "getMyCommands": self._get_my_commands,
            "deleteMyCommands": self._delete_my_commands,
            "setWebhook": self._set_webhook,
            "deleteWebhook": self._delete_webhook,
            "getWebhookInfo": self._get_webhook_info,
            "sendChatAction": self._send_chat_action,
            "deleteMessage": self._delete_message,
        }
        self._handlers = {name.lower(): (name, handler) for name, handler in handlers.items()}

    # ---------------------------------------------------------------- entry point

    async def handle(
        self,
        token: str,
        method: str,
        params: Mapping[str, Any],
        files: Mapping[str, UploadedFile],
    ) -> tuple[int, dict[str, Any]]:
        """Answer one Bot API call: return the HTTP status and the JSON envelope."""
        name, handler = self._handlers.get(method.lower(), (method, None))
        decoded: dict[str, Any] = dict(params)
        delay = 0.0
        try:
            if token != self.token:
                raise _ApiError(401, "Unauthorized")
            if handler is None:
                raise _ApiError(404, "Not Found")
            decoded = decode_params(params)
            fault = self._take_fault(name, decoded.get("chat_id"))
            if isinstance(fault, SlowFault):
                if fault.before_processing:
                    await asyncio.sleep(fault.seconds)
                else:
                    delay = fault.seconds
            elif fault is not None and (error := fault._error()) is not None:
                raise error
            self._check_rate_limit(name, decoded.get("chat_id"))
            status, body = 200, {"ok": True, "result": await handler(decoded, files)}
        except _ApiError as exc:
            status, body = exc.status, exc.envelope()
            if status == 429:
                self.throttled_count += 1
        chat_id = decoded.get("chat_id")
        self.calls.append(
            RecordedCall(
                method=name,
                params=decoded,
                status=status,
                time=time.monotonic(),
                chat_id=chat_id if isinstance(chat_id, int) else None,
                files=tuple(files),
                description=body.get("description"),
            )
        )
        self._signal.notify()
        if delay:
            await asyncio.sleep(delay)
        return status, body

    def file_by_path(self, token: str, path: str) -> StoredFile | None:
        """The stored file served at ``/file/bot<token>/<path>``, if any."""
        if token != self.token:
            return None
        return self._files_by_path.get(path)

    # ---------------------------------------------------------------- faults and limits

    def inject(
        self,
        fault: Fault,
        *,
        method: str | None = None,
        chat_id: int | None = None,
        times: int = 1,
    ) -> None:
        """Make the next ``times`` matching calls fail (or be slow) with ``fault``.

        ``method=None`` matches every method except ``getUpdates`` (so a polling bot does not
        swallow the fault); name ``getUpdates`` explicitly to fault polling.
        """
        if times < 1:
            raise ValueError("times must be at least 1")
        self._faults.append(
            _PendingFault(fault, method.lower() if method else None, chat_id, times)
        )

    def _take_fault(self, method: str, chat_id: object) -> Fault | None:
        target = chat_id if isinstance(chat_id, int) else None
        for pending in self._faults:
            if pending.matches(method, target):
                pending.remaining -= 1
                if pending.remaining == 0:
                    self._faults.remove(pending)
                return pending.fault
        return None

    def _check_rate_limit(self, method: str, chat_id: object) -> None:
        if not self.enforce_limits or method not in _RATE_LIMITED_METHODS:
            return
        wait = self._limiter.acquire(chat_id if isinstance(chat_id, int) else None)
        if wait is not None:
            raise _retry_after(wait)

    def block(self, user_id: int, *, notify: bool = True) -> None:
        """The user blocks the bot: sends/edits to them get 403 from now on."""
        self._blocked.add(user_id)
        if notify:
            self._enqueue_member_change(user_id, "member", "kicked")
        self._signal.notify()

    def unblock(self, user_id: int, *, notify: bool = True) -> None:
        """The user unblocks (restarts) the bot."""
        self._blocked.discard(user_id)
        if notify:
            self._enqueue_member_change(user_id, "kicked", "member")
        self._signal.notify()

    def block_fraction(
        self, user_ids: Iterable[int], fraction: float, *, seed: int = 0, notify: bool = False
    ) -> list[int]:
        """Permanently block a reproducible ``fraction`` of ``user_ids``; return them sorted."""
        candidates = sorted(set(user_ids))
        chosen = random.Random(seed).sample(candidates, round(len(candidates) * fraction))
        for user_id in chosen:
            self.block(user_id, notify=notify)
        return sorted(chosen)

    @property
    def blocked_users(self) -> frozenset[int]:
        return frozenset(self._blocked)

    # ---------------------------------------------------------------- the user's side

    def send_text(
        self,
        user_id: int,
        text: str,
        *,
        first_name: str = "Alex",
        language_code: str = "en",
        chat_type: str = "private",
        chat_id: int | None = None,
    ) -> dict[str, Any]:
        """The user sends a text message; return the enqueued Update."""
        user = self._remember_user(user_id, first_name=first_name, language_code=language_code)
        return self._user_message(user, {"text": text}, chat_type=chat_type, chat_id=chat_id)

    def send_command(
        self,
        user_id: int,
        command: str,
        args: str = "",
        *,
        first_name: str | None = None,
        language_code: str | None = None,
        chat_type: str = "private",
        chat_id: int | None = None,
    ) -> dict[str, Any]:
        """The user sends ``/command args`` (with the ``bot_command`` entity clients add).

        ``first_name``/``language_code`` default to what the fake last saw for this user."""
        command_text = "/" + command.removeprefix("/")
        content = {
            "text": f"{command_text} {args}" if args else command_text,
            "entities": [{"type": "bot_command", "offset": 0, "length": _utf16_len(command_text)}],
        }
        user = self._remember_user(user_id, first_name=first_name, language_code=language_code)
        return self._user_message(user, content, chat_type=chat_type, chat_id=chat_id)

    def share_location(
        self,
        user_id: int,
        latitude: float,
        longitude: float,
        *,
        first_name: str | None = None,
        language_code: str | None = None,
        chat_id: int | None = None,
    ) -> dict[str, Any]:
        """The user shares a location (in their private chat unless ``chat_id`` is given)."""
        content = {"location": {"latitude": latitude, "longitude": longitude}}
        user = self._remember_user(user_id, first_name=first_name, language_code=language_code)
        chat_type = "private" if chat_id is None else self._chat(chat_id).type
        return self._user_message(user, content, chat_type=chat_type, chat_id=chat_id)

    def press_button(
        self, user_id: int, message_id: int, callback_data: str, *, chat_id: int | None = None
    ) -> dict[str, Any]:
        """The user presses an inline button carrying ``callback_data`` under a message."""
        target_chat = user_id if chat_id is None else chat_id
        message = self._message_index.get((target_chat, message_id))
        if message is None or message.deleted:
            raise AssertionError(f"chat {target_chat} has no message {message_id} to press on")
        user = self._remember_user(user_id)
        self._query_counter += 1
        query_id = str(4_000_000_000_000_000 + self._query_counter)
        self._pending_queries.add(query_id)
        query = {
            "id": query_id,
            "from": user.to_json(),
            "chat_instance": str(-8_000_000_000_000 - abs(target_chat)),
            "data": callback_data,
            "message": self._message_json(message),
        }
        return self._enqueue({"callback_query": query})

    def press(
        self,
        user_id: int,
        button_text: str,
        message_id: int | None = None,
        *,
        chat_id: int | None = None,
    ) -> dict[str, Any]:
        """Press the inline button labelled ``button_text`` in the given or latest bot message."""
        target_chat = user_id if chat_id is None else chat_id
        if message_id is None:
            message = self.last_bot_message(target_chat)
        else:
            found = self._message_index.get((target_chat, message_id))
            if found is None:
                raise AssertionError(f"chat {target_chat} has no message {message_id}")
            message = found
        buttons = [b for b in self._inline_buttons(message) if b.get("text") == button_text]
        if not buttons:
            raise AssertionError(
                f"no button {button_text!r} under message {message.message_id} in chat "
                f"{target_chat}; available buttons: {self.buttons(message)}"
            )
        data = buttons[0].get("callback_data")
        if data is None:
            raise AssertionError(f"button {button_text!r} has no callback_data: {buttons[0]}")
        return self.press_button(user_id, message.message_id, data, chat_id=chat_id)

    def send_raw_update(self, update: dict[str, Any]) -> dict[str, Any]:
        """Enqueue any Update (the fake assigns the ``update_id``); learn its users and chats."""
        payload = {key: value for key, value in update.items() if key != "update_id"}
        for value in payload.values():
            if isinstance(value, dict):
                self._learn(value)
        message = payload.get("message")
        if isinstance(message, dict) and isinstance(message.get("chat"), dict):
            payload["message"] = self._record_raw_message(message)
        query = payload.get("callback_query")
        if isinstance(query, dict) and "id" in query:
            self._pending_queries.add(str(query["id"]))
        return self._enqueue(payload)

    # ---------------------------------------------------------------- inspection

    def calls_to(self, method: str) -> list[RecordedCall]:
        wanted = method.lower()
        return [call for call in self.calls if call.method.lower() == wanted]

    @property
    def sent_count(self) -> int:
        """How many messages the bot created; cheap, for waiting on large broadcasts."""
        return len(self._bot_messages)

    def sent_messages(self, chat_id: int | None = None) -> list[FakeMessage]:
        """Every message the bot created (also deleted ones), oldest first."""
        return [m for m in self._bot_messages if chat_id is None or m.chat_id == chat_id]

    def messages(self, chat_id: int) -> list[FakeMessage]:
        """The chat as the user sees it: both sides, current state, without deleted ones."""
        return [m for m in self._history.get(chat_id, []) if not m.deleted]

    def last_bot_message(self, chat_id: int) -> FakeMessage:
        for message in reversed(self.messages(chat_id)):
            if message.from_bot:
                return message
        raise AssertionError(f"the bot has no message in chat {chat_id}\n{self.describe()}")

    def buttons(self, message: FakeMessage) -> list[tuple[str, str]]:
        """Inline buttons as (text, callback_data), flattened; URL buttons give their URL."""
        return [
            (str(b.get("text", "")), str(b.get("callback_data") or b.get("url") or ""))
            for b in self._inline_buttons(message)
        ]

    def file(self, file_id: str) -> StoredFile:
        return self._files[file_id]

    def pending_updates(self) -> list[dict[str, Any]]:
        """Updates not yet confirmed by a getUpdates offset."""
        return list(self._updates)

    @property
    def waiting_pollers(self) -> int:
        """How many getUpdates calls are currently long-polling."""
        return self._waiting_pollers

    @property
    def webhook_url(self) -> str:
        return self._webhook_url

    @property
    def webhook_secret(self) -> str | None:
        """The ``secret_token`` of the current webhook (``None`` if none was given)."""
        return self._webhook_secret

    @property
    def known_chats(self) -> frozenset[int]:
        return frozenset(self._chats)

    def describe(self, last: int = 8) -> str:
        """A short summary of recent activity, for assertion messages."""
        lines = [f"last {min(last, len(self.calls))} of {len(self.calls)} API calls:"]
        lines += [f"  {call.summary()}" for call in self.calls[-last:]]
        lines.append(f"pending updates: {len(self._updates)}")
        if self._webhook_url:
            pushes = self.webhook_deliveries
            latest = f", last: {pushes[-1].status or pushes[-1].error}" if pushes else ""
            lines.append(f"webhook: {self._webhook_url} ({len(pushes)} pushes{latest})")
        lines.append("last bot messages:")
        lines += [
            f"  chat={m.chat_id} id={m.message_id}: {(m.plain_text or '')[:60]!r}"
            for m in self._bot_messages[-3:]
        ]
        return "\n".join(lines)

    # ---------------------------------------------------------------- waiting

    async def wait_for(
        self,
        predicate: Callable[[], bool],
        timeout: float = 5.0,  # noqa: ASYNC109 - part of the documented test API
    ) -> None:
        """Wait until ``predicate()`` holds, re-checking on every state change."""
        if not await self._signal.wait_for(predicate, timeout):
            raise AssertionError(f"condition not met within {timeout}s\n{self.describe()}")

    async def wait_for_bot_message(
        self,
        chat_id: int,
        *,
        contains: str | None = None,
        count: int = 1,
        timeout: float = 5.0,  # noqa: ASYNC109 - part of the documented test API
    ) -> FakeMessage:
        """Wait for ``count`` new bot messages to ``chat_id`` (containing ``contains``, if
        given) created after this call began; return the latest of them."""
        baseline = len(self.sent_messages(chat_id))

        def matching() -> list[FakeMessage]:
            new = self.sent_messages(chat_id)[baseline:]
            return [m for m in new if contains is None or m.contains(contains)]

        if not await self._signal.wait_for(lambda: len(matching()) >= count, timeout):
            wanted = f" containing {contains!r}" if contains is not None else ""
            raise AssertionError(
                f"expected {count} new bot message(s) to chat {chat_id}{wanted} within "
                f"{timeout}s, got {len(matching())}\n{self.describe()}"
            )
        return matching()[-1]

    def interrupt_polls(self) -> None:
        """Make every waiting getUpdates return now (used when a server stops)."""
        self._poll_epoch += 1
        self._signal.notify()

    # ---------------------------------------------------------------- webhook delivery

    def start_webhook_delivery(self) -> None:
        """Start pushing queued updates to the webhook, if one is set and no push task runs.

        setWebhook and :meth:`FakeBotAPIServer.start` call this; it needs a running loop.
        """
        if not self._webhook_url:
            return
        if self._webhook_task is not None and not self._webhook_task.done():
            return
        self._webhook_task = asyncio.get_running_loop().create_task(
            self._push_updates(), name="fake-bot-api-webhook"
        )

    async def stop_webhook_delivery(self) -> None:
        """Stop pushing updates and wait for the push task to end (the webhook stays set, as
        if Telegram could not reach the bot). deleteWebhook and :meth:`FakeBotAPIServer.stop`
        call this; an update whose push was interrupted stays queued."""
        task, self._webhook_task = self._webhook_task, None
        if task is None or task.done():
            return
        loop = task.get_loop()
        try:
            current: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            current = None
        if loop is current:
            task.cancel()
            await asyncio.wait({task})
        elif not loop.is_closed():
            loop.call_soon_threadsafe(task.cancel)

    async def post_to_webhook(
        self, update: Mapping[str, Any], *, secret: str | None, url: str | None = None
    ) -> int:
        """POST one raw ``update`` to the webhook (or ``url``) as anybody on the internet could,
        with ``secret`` in the secret-token header (no header if ``None``); return the HTTP
        status. The update is neither queued nor recorded in :attr:`webhook_deliveries`."""
        target = url or self._webhook_url
        if not target:
            raise RuntimeError("no webhook is set; pass url=")
        timeout = ClientTimeout(total=self._webhook_timeout)
        async with (
            ClientSession(timeout=timeout) as session,
            session.post(
                target, data=json.dumps(update).encode(), headers=self._push_headers(secret)
            ) as response,
        ):
            await response.read()
            return response.status

    @staticmethod
    def _push_headers(secret: str | None) -> dict[str, str]:
        # PTB's webhook server answers 403 unless the type is exactly "application/json".
        headers = {"Content-Type": "application/json"}
        if secret is not None:
            headers[SECRET_TOKEN_HEADER] = secret
        return headers

    async def _push_updates(self) -> None:
        """Push queued updates to the webhook in order, one at a time, retrying failures."""
        delay = self._webhook_retry_delay
        async with ClientSession(timeout=ClientTimeout(total=self._webhook_timeout)) as session:
            while True:
                update = await self._next_update_to_push()
                url = self._webhook_url
                status, error = await self._push(session, url, update)
                attempt = WebhookDelivery(url, update["update_id"], status, time.monotonic(), error)
                self.webhook_deliveries.append(attempt)
                if attempt.ok:
                    self._updates = [u for u in self._updates if u is not update]
                    delay = self._webhook_retry_delay
                else:
                    self._webhook_last_error = (self._now(), error or "")
                self._signal.notify()
                if not attempt.ok:
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, self._webhook_max_retry_delay)

    async def _next_update_to_push(self) -> dict[str, Any]:
        def ready() -> bool:
            return bool(self._webhook_url) and bool(self._deliverable(1))

        while not await self._signal.wait_for(ready, 60.0):
            pass
        return self._deliverable(1)[0]

    async def _push(
        self, session: ClientSession, url: str, update: dict[str, Any]
    ) -> tuple[int | None, str | None]:
        """POST one update; return the status (None without an answer) and the error text."""
        headers = self._push_headers(self._webhook_secret)
        try:
            async with session.post(
                url, data=json.dumps(update).encode(), headers=headers
            ) as response:
                await response.read()
        except TimeoutError:
            return None, "Connection timed out"
        except (ClientError, OSError) as exc:
            refused = isinstance(exc, ConnectionRefusedError) or isinstance(
                getattr(exc, "os_error", None), ConnectionRefusedError
            )
            return None, "Connection refused" if refused else f"Connection failed: {exc}"
        if 200 <= response.status < 300:
            return response.status, None
        return (
            response.status,
            f"Wrong response from the webhook: {response.status} {response.reason}",
        )

    # ---------------------------------------------------------------- updates, users, chats

    def _enqueue(self, payload: dict[str, Any]) -> dict[str, Any]:
        self._last_update_id += 1
        update = {"update_id": self._last_update_id, **payload}
        self._updates.append(update)
        self._signal.notify()
        return update

    def _enqueue_member_change(self, user_id: int, old: str, new: str) -> None:
        user = self._remember_user(user_id)
        chat = self._remember_chat(user, "private", None)

        def member(status: str) -> dict[str, Any]:
            data: dict[str, Any] = {"user": self._bot_user_json(), "status": status}
            if status == "kicked":
                data["until_date"] = 0
            return data

        self._enqueue(
            {
                "my_chat_member": {
                    "chat": self._chats[chat].to_json(),
                    "from": user.to_json(),
                    "date": self._now(),
                    "old_chat_member": member(old),
                    "new_chat_member": member(new),
                }
            }
        )

    def _remember_user(
        self, user_id: int, *, first_name: str | None = None, language_code: str | None = None
    ) -> _User:
        user = self._users.setdefault(user_id, _User(user_id))
        if first_name is not None:
            user.first_name = first_name
        if language_code is not None:
            user.language_code = language_code
        return user

    def _remember_chat(self, user: _User, chat_type: str, chat_id: int | None) -> int:
        if chat_type == "private":
            chat = _Chat(
                user.id, "private", user.first_name, user.last_name, username=user.username
            )
            self._chats[user.id] = chat
            return user.id
        target = -abs(user.id) if chat_id is None else chat_id
        self._chats.setdefault(target, _Chat(target, chat_type, title=f"Group {target}"))
        return target

    def _learn(self, obj: dict[str, Any]) -> None:
        sender = obj.get("from")
        if isinstance(sender, dict) and isinstance(sender.get("id"), int):
            user = self._remember_user(
                sender["id"],
                first_name=sender.get("first_name"),
                language_code=sender.get("language_code"),
            )
            user.username = sender.get("username", user.username)
        chat = obj.get("chat")
        if isinstance(chat, dict) and isinstance(chat.get("id"), int):
            self._chats[chat["id"]] = _Chat(
                chat["id"],
                chat.get("type", "private"),
                chat.get("first_name"),
                chat.get("last_name"),
                chat.get("username"),
                chat.get("title"),
            )

    def _chat(self, chat_id: int) -> _Chat:
        chat = self._chats.get(chat_id)
        if chat is None:
            if chat_id > 0:
                chat = _Chat(chat_id, "private", first_name=f"User {chat_id}")
            else:
                kind = "supergroup" if str(chat_id).startswith("-100") else "group"
                chat = _Chat(chat_id, kind, title=f"Group {chat_id}")
            self._chats[chat_id] = chat
        return chat

    def _now(self) -> int:
        return int(self._clock())

    def _next_message_id(self, chat_id: int) -> int:
        self._last_message_id[chat_id] = self._last_message_id.get(chat_id, 0) + 1
        return self._last_message_id[chat_id]

    def _append_message(self, message: FakeMessage) -> None:
        self._history.setdefault(message.chat_id, []).append(message)
        self._message_index[(message.chat_id, message.message_id)] = message
        if message.from_bot:
            self._bot_messages.append(message)

    def _user_message(
        self, user: _User, content: dict[str, Any], *, chat_type: str, chat_id: int | None
    ) -> dict[str, Any]:
        target = self._remember_chat(user, chat_type, chat_id)
        raw = {
            "message_id": self._next_message_id(target),
            "from": user.to_json(),
            "chat": self._chats[target].to_json(),
            "date": self._now(),
            **content,
        }
        return self._enqueue({"message": self._record_raw_message(raw)})

    def _record_raw_message(self, raw: dict[str, Any]) -> dict[str, Any]:
        chat_id = int(raw["chat"]["id"])
        message = dict(raw)
        if "message_id" not in message:
            message["message_id"] = self._next_message_id(chat_id)
        message.setdefault("date", self._now())
        message_id = int(message["message_id"])
        self._last_message_id[chat_id] = max(self._last_message_id.get(chat_id, 0), message_id)
        location = message.get("location")
        sender = message.get("from")
        self._append_message(
            FakeMessage(
                message_id=message_id,
                chat_id=chat_id,
                date=int(message["date"]),
                text=message.get("text"),
                caption=message.get("caption"),
                plain_text=message.get("text", message.get("caption")),
                entities=list(message.get("entities", [])),
                from_bot=False,
                user_id=sender.get("id") if isinstance(sender, dict) else None,
                location=(location["latitude"], location["longitude"]) if location else None,
                raw=message,
            )
        )
        return message

    # ---------------------------------------------------------------- building Bot API objects

    def _bot_user_json(self) -> dict[str, Any]:
        return {
            "id": self.bot_id,
            "is_bot": True,
            "first_name": "BackCalm Test",
            "username": self.bot_username,
        }

    @staticmethod
    def _inline_buttons(message: FakeMessage) -> list[dict[str, Any]]:
        rows = (message.reply_markup or {}).get("inline_keyboard") or []
        return [button for row in rows for button in row if isinstance(button, dict)]

    @staticmethod
    def _inline_markup(markup: dict[str, Any] | None) -> dict[str, Any] | None:
        """The part of a reply markup that Telegram attaches to (and returns with) a message."""
        if markup is None or "inline_keyboard" not in markup:
            return None
        return markup

    def _media_json(self, stored: StoredFile) -> tuple[str, Any]:
        base = _without_none(
            {
                "file_id": stored.file_id,
                "file_unique_id": stored.file_unique_id,
                "file_size": stored.file_size,
            }
        )
        if stored.kind == "photo":
            return "photo", [{**base, "width": stored.width, "height": stored.height}]
        extra = _without_none({"file_name": stored.file_name, "mime_type": stored.mime_type})
        return "document", {**base, **extra}

    def _message_json(self, message: FakeMessage, *, with_reply: bool = True) -> dict[str, Any]:
        if message.raw is not None:
            return dict(message.raw)
        data: dict[str, Any] = {
            "message_id": message.message_id,
            "from": self._bot_user_json(),
            "chat": self._chat(message.chat_id).to_json(),
            "date": message.date,
        }
        if message.edit_date is not None:
            data["edit_date"] = message.edit_date
        if message.file_id is not None:
            key, value = self._media_json(self._files[message.file_id])
            data[key] = value
        is_text = message.text is not None
        if message.plain_text is not None:
            data["text" if is_text else "caption"] = message.plain_text
        if message.entities:
            data["entities" if is_text else "caption_entities"] = message.entities
        if (markup := self._inline_markup(message.reply_markup)) is not None:
            data["reply_markup"] = markup
        if with_reply and message.reply_to_message_id is not None:
            replied = self._message_index.get((message.chat_id, message.reply_to_message_id))
            if replied is not None:
                data["reply_to_message"] = self._message_json(replied, with_reply=False)
        return data

    # ---------------------------------------------------------------- validation helpers

    def _target_chat(self, params: Mapping[str, Any], *, check_blocked: bool = True) -> int:
        chat_id = params.get("chat_id")
        if chat_id is None or chat_id == "":
            raise _bad_request("chat_id is empty")
        if not isinstance(chat_id, int) or (
            chat_id not in self._chats and not self.auto_create_chats
        ):
            raise _bad_request("chat not found")
        self._chat(chat_id)
        if check_blocked and chat_id in self._blocked:
            raise _ApiError(403, BLOCKED)
        return chat_id

    @staticmethod
    def _format(
        source: str, parse_mode: object, entities: object, *, limit: int, too_long: str
    ) -> FormattedText:
        mode = str(parse_mode or "").lower()
        if mode == "html":
            try:
                formatted = parse_html(source)
            except EntityParseError as exc:
                raise _bad_request(f"can't parse entities: {exc}") from None
        elif mode in ("", "markdown", "markdownv2"):
            given = entities if isinstance(entities, list) and not mode else []
            formatted = FormattedText(source, list(given))
        else:
            raise _bad_request("unsupported parse_mode")
        if len(formatted.text) > limit:
            raise _bad_request(too_long)
        return formatted

    def _text(self, params: Mapping[str, Any]) -> FormattedText:
        text = params.get("text")
        if not isinstance(text, str) or not text.strip():
            raise _bad_request("message text is empty")
        formatted = self._format(
            text,
            params.get("parse_mode"),
            params.get("entities"),
            limit=MAX_TEXT_LENGTH,
            too_long="message is too long",
        )
        if not formatted.text.strip():
            raise _bad_request("message text is empty")
        return formatted

    def _caption(self, params: Mapping[str, Any]) -> FormattedText | None:
        caption = params.get("caption")
        if caption is None:
            return None
        return self._format(
            str(caption),
            params.get("parse_mode"),
            params.get("caption_entities"),
            limit=MAX_CAPTION_LENGTH,
            too_long="message caption is too long",
        )

    @staticmethod
    def _reply_markup(params: Mapping[str, Any]) -> dict[str, Any] | None:
        markup = params.get("reply_markup")
        if markup is None:
            return None
        if not isinstance(markup, dict):
            raise _bad_request("can't parse reply keyboard markup JSON object")
        rows = markup.get("inline_keyboard")
        if rows is None:
            return dict(markup)
        if not isinstance(rows, list) or not all(isinstance(row, list) for row in rows):
            raise _bad_request(
                'field "inline_keyboard" of the InlineKeyboardMarkup must be an Array of Arrays'
            )
        for button in (button for row in rows for button in row):
            if not isinstance(button, dict) or not isinstance(button.get("text"), str):
                raise _bad_request(
                    'can\'t parse inline keyboard button: Field "text" must be of type String'
                )
            data = button.get("callback_data")
            if data is not None and not 1 <= len(str(data).encode()) <= MAX_CALLBACK_DATA_BYTES:
                raise _bad_request("BUTTON_DATA_INVALID")
            if not _BUTTON_ACTIONS & button.keys():
                raise _bad_request(
                    "can't parse inline keyboard button: "
                    "Text buttons are unallowed in the inline keyboard"
                )
        return copy.deepcopy(markup)

    def _reply_to(self, chat_id: int, params: Mapping[str, Any]) -> int | None:
        reply = params.get("reply_parameters")
        if isinstance(reply, dict):
            message_id, allow = reply.get("message_id"), reply.get("allow_sending_without_reply")
        else:
            message_id = params.get("reply_to_message_id")
            allow = params.get("allow_sending_without_reply")
        if message_id is None:
            return None
        target = self._message_index.get((chat_id, int(message_id)))
        if target is None or target.deleted:
            if allow:
                return None
            raise _bad_request("message to be replied not found")
        return target.message_id

    def _input_file(
        self, params: Mapping[str, Any], files: Mapping[str, UploadedFile], name: str
    ) -> StoredFile | None:
        value = params.get(name)
        upload: UploadedFile | None = None
        if isinstance(value, str) and value.startswith("attach://"):
            upload = files.get(value.removeprefix("attach://"))
            if upload is None:
                raise _bad_request(f'can\'t find attached file "{value}"')
        elif value is None:
            upload = files.get(name)
        if upload is not None:
            return self._store_upload(name, upload)
        if value is None:
            return None
        if not isinstance(value, str):
            raise _bad_request("wrong file identifier/HTTP URL specified")
        known = self._files.get(value)
        if known is not None:
            if known.kind != name:
                raise _bad_request(f"can't use file of type {known.kind.title()} as {name.title()}")
            return known
        if value.startswith(("http://", "https://")):
            file_name = PurePosixPath(urlsplit(value).path).name or None
            return self._store(name, None, file_name=file_name, mime_type=None, size=(800, 600))
        raise _bad_request("wrong file identifier/HTTP URL specified")

    def _store_upload(self, kind: str, upload: UploadedFile) -> StoredFile:
        if not upload.data:
            raise _bad_request("file must be non-empty")
        size = (0, 0)
        if kind == "photo":
            found = _image_size(upload.data)
            if found is None:
                raise _bad_request("IMAGE_PROCESS_FAILED")
            width, height = found
            if width + height > 10_000 or max(width, height) > 20 * max(1, min(width, height)):
                raise _bad_request("PHOTO_INVALID_DIMENSIONS")
            size = found
        mime_type = upload.content_type or mimetypes.guess_type(upload.filename)[0]
        return self._store(
            kind, upload.data, file_name=upload.filename, mime_type=mime_type, size=size
        )

    def _store(
        self,
        kind: str,
        data: bytes | None,
        *,
        file_name: str | None,
        mime_type: str | None,
        size: tuple[int, int],
    ) -> StoredFile:
        self._file_counter += 1
        number = self._file_counter
        prefix = "AgACAgIAAxkBAAI" if kind == "photo" else "BQACAgIAAxkBAAI"
        suffix = ".jpg" if kind == "photo" else PurePosixPath(file_name or "").suffix
        stored = StoredFile(
            kind=kind,
            file_id=f"{prefix}{number:08d}{self.bot_id}",
            file_unique_id=f"AQAD{number:06d}",
            file_path=f"{kind}s/file_{number}{suffix}",
            data=data,
            file_name=None if kind == "photo" else file_name,
            mime_type=None if kind == "photo" else mime_type,
            width=size[0],
            height=size[1],
        )
        self._files[stored.file_id] = stored
        self._files_by_path[stored.file_path] = stored
        return stored

    def _editable_message(self, params: Mapping[str, Any]) -> FakeMessage:
        if params.get("inline_message_id") is not None:
            raise _bad_request("MESSAGE_ID_INVALID")
        chat_id = self._target_chat(params)
        message_id = params.get("message_id")
        if message_id is None:
            raise _bad_request("message identifier is not specified")
        message = self._message_index.get((chat_id, message_id))
        if message is None or message.deleted:
            raise _bad_request("message to edit not found")
        if not message.from_bot:
            raise _bad_request("message can't be edited")
        return message

    def _new_bot_message(self, chat_id: int, params: Mapping[str, Any], **fields: Any) -> Any:
        message = FakeMessage(
            message_id=self._next_message_id(chat_id),
            chat_id=chat_id,
            date=self._now(),
            parse_mode=params.get("parse_mode"),
            reply_markup=self._reply_markup(params),
            reply_to_message_id=self._reply_to(chat_id, params),
            **fields,
        )
        self._append_message(message)
        return self._message_json(message)

    def _apply_edit(
        self,
        message: FakeMessage,
        content: FormattedText | None,
        markup: dict[str, Any] | None,
        **fields: Any,
    ) -> Any:
        same_content = content is None or (
            content.text == message.plain_text and content.entities == message.entities
        )
        if same_content and self._inline_markup(markup) == self._inline_markup(
            message.reply_markup
        ):
            raise _bad_request(NOT_MODIFIED)
        if content is not None:
            message.plain_text, message.entities = content.text, content.entities
        for key, value in fields.items():
            setattr(message, key, value)
        message.reply_markup = markup
        message.edits += 1
        message.edit_date = self._now()
        return self._message_json(message)

    # ---------------------------------------------------------------- method handlers

    async def _get_me(self, params: dict[str, Any], files: Mapping[str, UploadedFile]) -> Any:
        return {
            **self._bot_user_json(),
            "can_join_groups": True,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
            "can_connect_to_business": False,
            "has_main_web_app": False,
        }

    async def _get_updates(self, params: dict[str, Any], files: Mapping[str, UploadedFile]) -> Any:
        if self._webhook_url:
            raise _ApiError(409, WEBHOOK_CONFLICT)
        offset = params.get("offset")
        limit = min(max(int(params.get("limit") or 100), 1), 100)
        timeout = max(int(params.get("timeout") or 0), 0)
        allowed = params.get("allowed_updates")
        if isinstance(allowed, list):
            self._allowed_updates = frozenset(allowed) or None
        # A newer getUpdates terminates an older one that is still waiting, like Telegram.
        self._poll_generation += 1
        generation, epoch = self._poll_generation, self._poll_epoch
        self._signal.notify()
        if isinstance(offset, int):
            self._confirm(offset)

        def ready() -> bool:
            superseded = generation != self._poll_generation
            return superseded or epoch != self._poll_epoch or bool(self._deliverable(limit))

        self._waiting_pollers += 1
        try:
            await self._signal.wait_for(ready, timeout)
        finally:
            self._waiting_pollers -= 1
        if generation != self._poll_generation:
            raise _ApiError(409, POLL_CONFLICT)
        return self._deliverable(limit)

    def _confirm(self, offset: int) -> None:
        if offset > 0:
            self._updates = [u for u in self._updates if u["update_id"] >= offset]
        elif offset < 0:
            self._updates = self._updates[offset:]

    def _deliverable(self, limit: int) -> list[dict[str, Any]]:
        def allowed(update: dict[str, Any]) -> bool:
            kinds = update.keys() - {"update_id"}
            if self._allowed_updates is None:
                return not kinds & _OPT_IN_UPDATES
            return bool(kinds & self._allowed_updates)

        # Telegram drops updates of types the bot did not ask for.
        self._updates = [u for u in self._updates if allowed(u)]
        return self._updates[:limit]

    async def _send_message(self, params: dict[str, Any], files: Mapping[str, UploadedFile]) -> Any:
        chat_id = self._target_chat(params)
        formatted = self._text(params)
        return self._new_bot_message(
            chat_id,
            params,
            text=params["text"],
            plain_text=formatted.text,
            entities=formatted.entities,
        )

    async def _send_media(
        self, kind: str, params: dict[str, Any], files: Mapping[str, UploadedFile]
    ) -> Any:
        chat_id = self._target_chat(params)
        caption = self._caption(params)
        stored = self._input_file(params, files, kind)
        if stored is None:
            raise _bad_request(f"there is no {kind} in the request")
        media: dict[str, Any] = (
            {"photo": stored.data}
            if kind == "photo"
            else {"document": stored.data, "document_name": stored.file_name}
        )
        return self._new_bot_message(
            chat_id,
            params,
            caption=params.get("caption"),
            plain_text=caption.text if caption else None,
            entities=caption.entities if caption else [],
            file_id=stored.file_id,
            **media,
        )

    async def _send_photo(self, params: dict[str, Any], files: Mapping[str, UploadedFile]) -> Any:
        return await self._send_media("photo", params, files)

    async def _send_document(
        self, params: dict[str, Any], files: Mapping[str, UploadedFile]
    ) -> Any:
        return await self._send_media("document", params, files)

    async def _edit_message_text(
        self, params: dict[str, Any], files: Mapping[str, UploadedFile]
    ) -> Any:
        message = self._editable_message(params)
        formatted = self._text(params)
        if message.text is None:
            raise _bad_request("there is no text in the message to edit")
        return self._apply_edit(
            message,
            formatted,
            self._reply_markup(params),
            text=params["text"],
            parse_mode=params.get("parse_mode"),
        )

    async def _edit_message_caption(
        self, params: dict[str, Any], files: Mapping[str, UploadedFile]
    ) -> Any:
        message = self._editable_message(params)
        caption = self._caption(params) or FormattedText("")
        if message.file_id is None:
            raise _bad_request("there is no caption in the message to edit")
        return self._apply_edit(
            message,
            caption,
            self._reply_markup(params),
            caption=params.get("caption"),
            parse_mode=params.get("parse_mode"),
        )

    async def _edit_message_reply_markup(
        self, params: dict[str, Any], files: Mapping[str, UploadedFile]
    ) -> Any:
        message = self._editable_message(params)
        return self._apply_edit(message, None, self._reply_markup(params))

    async def _answer_callback_query(
        self, params: dict[str, Any], files: Mapping[str, UploadedFile]
    ) -> Any:
        query_id = str(params.get("callback_query_id", ""))
        if query_id not in self._pending_queries:
            raise _bad_request(QUERY_TOO_OLD)
        self._pending_queries.discard(query_id)
        self.callback_answers[query_id] = dict(params)
        return True

    async def _get_file(self, params: dict[str, Any], files: Mapping[str, UploadedFile]) -> Any:
        stored = self._files.get(str(params.get("file_id", "")))
        if stored is None:
            raise _bad_request("invalid file_id")
        if stored.data is None:
            raise _bad_request("wrong file_id or the file is temporarily unavailable")
        return {
            "file_id": stored.file_id,
            "file_unique_id": stored.file_unique_id,
            "file_size": stored.file_size,
            "file_path": stored.file_path,
        }

    @staticmethod
    def _commands_key(params: Mapping[str, Any]) -> tuple[str, str]:
        scope = params.get("scope") or {"type": "default"}
        return json.dumps(scope, sort_keys=True), str(params.get("language_code") or "")

    async def _set_my_commands(
        self, params: dict[str, Any], files: Mapping[str, UploadedFile]
    ) -> Any:
        commands = params.get("commands")
        if not isinstance(commands, list) or len(commands) > 100:
            raise _bad_request("can't parse commands JSON object")
        for command in commands:
            if not isinstance(command, dict) or not _COMMAND_RE.fullmatch(
                str(command.get("command", ""))
            ):
                raise _bad_request("BOT_COMMAND_INVALID")
            if not 1 <= len(str(command.get("description", "")).strip()) <= 256:
                raise _bad_request("BOT_COMMAND_DESCRIPTION_INVALID")
        self._commands[self._commands_key(params)] = [
            {"command": c["command"], "description": c["description"]} for c in commands
        ]
        return True

    async def _get_my_commands(
        self, params: dict[str, Any], files: Mapping[str, UploadedFile]
    ) -> Any:
        return self._commands.get(self._commands_key(params), [])

    async def _delete_my_commands(
        self, params: dict[str, Any], files: Mapping[str, UploadedFile]
    ) -> Any:
        self._commands.pop(self._commands_key(params), None)
        return True

    async def _set_webhook(self, params: dict[str, Any], files: Mapping[str, UploadedFile]) -> Any:
        url = str(params.get("url") or "").strip()
        secret = params.get("secret_token") or None
        if url and not url.startswith(("http://", "https://")):
            raise _bad_request("bad webhook: An HTTPS URL must be provided for webhook")
        if secret is not None:
            if not isinstance(secret, str) or not _SECRET_TOKEN_RE.fullmatch(secret):
                raise _bad_request("secret token contains unallowed characters")
            if len(secret) > _MAX_SECRET_TOKEN_LENGTH:
                raise _bad_request("secret token is too long")
        max_connections = params.get("max_connections", 40)
        if not isinstance(max_connections, int) or not 1 <= max_connections <= 100:
            raise _bad_request("invalid max_connections specified")
        allowed = params.get("allowed_updates")
        if isinstance(allowed, list):
            self._allowed_updates = frozenset(allowed) or None
        if params.get("drop_pending_updates"):
            self._updates.clear()
        if not url:  # setWebhook with an empty URL removes the webhook
            await self._remove_webhook()
            return True
        if (url, secret) != (self._webhook_url, self._webhook_secret):
            self._webhook_last_error = None
        self._webhook_url, self._webhook_secret = url, secret
        self._webhook_max_connections = max_connections
        self.start_webhook_delivery()
        self._signal.notify()
        return True

    async def _delete_webhook(
        self, params: dict[str, Any], files: Mapping[str, UploadedFile]
    ) -> Any:
        await self._remove_webhook()
        if params.get("drop_pending_updates"):
            self._updates.clear()
        return True

    async def _remove_webhook(self) -> None:
        self._webhook_url, self._webhook_secret = "", None
        self._webhook_last_error = None
        await self.stop_webhook_delivery()
        self._signal.notify()

    async def _get_webhook_info(
        self, params: dict[str, Any], files: Mapping[str, UploadedFile]
    ) -> Any:
        info: dict[str, Any] = {
            "url": self._webhook_url,
            "has_custom_certificate": False,
            "pending_update_count": len(self._updates),
        }
        if self._webhook_url:
            info["max_connections"] = self._webhook_max_connections
            if self._webhook_last_error is not None:
                info["last_error_date"], info["last_error_message"] = self._webhook_last_error
            if self._allowed_updates is not None:
                info["allowed_updates"] = sorted(self._allowed_updates)
        return info

    async def _send_chat_action(
        self, params: dict[str, Any], files: Mapping[str, UploadedFile]
    ) -> Any:
        self._target_chat(params)
        if params.get("action") not in _CHAT_ACTIONS:
            raise _bad_request("wrong parameter action in request")
        return True

    async def _delete_message(
        self, params: dict[str, Any], files: Mapping[str, UploadedFile]
    ) -> Any:
        chat_id = self._target_chat(params, check_blocked=False)
        message = self._message_index.get((chat_id, params.get("message_id", 0)))
        if message is None or message.deleted:
            raise _bad_request("message to delete not found")
        message.deleted = True
        return True


# --------------------------------------------------------------------------------------------
# Transports
# --------------------------------------------------------------------------------------------


def _envelope_bytes(body: dict[str, Any]) -> bytes:
    return json.dumps(body).encode()


_NOT_FOUND: Final = {"ok": False, "error_code": 404, "description": "Not Found"}


class FakeBotAPIServer:
    """Serves a :class:`FakeBotAPI` over HTTP the way api.telegram.org does."""

    def __init__(self, api: FakeBotAPI, *, shutdown_timeout: float = 2.0) -> None:
        self.api = api
        self._shutdown_timeout = shutdown_timeout
        self._runner: web.AppRunner | None = None
        self._host = "127.0.0.1"
        self._port: int | None = None

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> None:
        if self._runner is not None:
            raise RuntimeError("server already started")
        app = web.Application(client_max_size=50 * 1024 * 1024)
        app.router.add_route("*", "/bot{token}/{method}", self._api_endpoint)
        app.router.add_get("/file/bot{token}/{path:.+}", self._file_endpoint)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=self._shutdown_timeout)
        await runner.setup()
        site = web.TCPSite(runner, host, port)
        await site.start()
        self._runner, self._host = runner, host
        self._port = int(runner.addresses[0][1])
        self.api.start_webhook_delivery()  # a webhook set before a restart is served again

    async def stop(self) -> None:
        if self._runner is None:
            return
        self.api.interrupt_polls()
        await self.api.stop_webhook_delivery()
        runner, self._runner, self._port = self._runner, None, None
        await runner.cleanup()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc_val: BaseException | None,
        exc_tb: TracebackType | None,
    ) -> None:
        await self.stop()

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("server not started")
        return self._port

    @property
    def base_url(self) -> str:
        """The value for ``Bot(base_url=...)``; PTB appends the token."""
        return f"http://{self._host}:{self.port}/bot"

    @property
    def base_file_url(self) -> str:
        """The value for ``Bot(base_file_url=...)``; PTB appends the token."""
        return f"http://{self._host}:{self.port}/file/bot"

    async def _api_endpoint(self, request: web.Request) -> web.Response:
        try:
            fields, files = await _read_fields(request)
        except ConnectionError:  # the client went away while sending its body
            return web.Response(status=499)
        except ValueError:
            error = _bad_request("can't parse request body")
            return web.json_response(error.envelope(), status=error.status)
        status, body = await self.api.handle(
            request.match_info["token"], request.match_info["method"], fields, files
        )
        return web.json_response(body, status=status)

    async def _file_endpoint(self, request: web.Request) -> web.Response:
        stored = self.api.file_by_path(request.match_info["token"], request.match_info["path"])
        if stored is None or stored.data is None:
            return web.json_response(_NOT_FOUND, status=404)
        content_type = stored.mime_type or "application/octet-stream"
        return web.Response(body=stored.data, content_type=content_type)


async def _read_fields(request: web.Request) -> tuple[dict[str, Any], dict[str, UploadedFile]]:
    """Query string plus form, multipart or JSON body -> raw fields and uploaded files."""
    fields: dict[str, Any] = dict(request.query)
    files: dict[str, UploadedFile] = {}
    if request.content_type == "application/json":
        body = await request.json()
        if not isinstance(body, dict):
            raise ValueError("JSON body must be an object")
        fields.update(body)
    elif request.content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
        for name, value in (await request.post()).items():
            if isinstance(value, web.FileField):
                files[name] = UploadedFile(value.filename, value.content_type, value.file.read())
            else:
                fields[name] = value.decode() if isinstance(value, bytes) else value
    return fields, files


def _fields_from_request_data(
    request_data: RequestData | None,
) -> tuple[dict[str, Any], dict[str, UploadedFile]]:
    """Exactly the form fields and file parts PTB's HTTPXRequest would put on the wire."""
    if request_data is None:
        return {}, {}
    files: dict[str, UploadedFile] = {}
    for name, (filename, content, mime_type) in request_data.multipart_data.items():
        data = content if isinstance(content, bytes) else content.read()
        files[name] = UploadedFile(filename, mime_type, data)
    return dict(request_data.json_parameters), files


class FakeRequest(BaseRequest):
    """A PTB ``BaseRequest`` that calls :meth:`FakeBotAPI.handle` in-process.

    Like a real server, the fake keeps processing a call whose client gave up: a read timeout
    raises ``TimedOut`` here while the call completes in the background.
    """

    def __init__(self, api: FakeBotAPI, *, read_timeout: float | None = 5.0) -> None:
        self._api = api
        self._read_timeout = read_timeout
        self._tasks: set[asyncio.Task[tuple[int, dict[str, Any]]]] = set()

    @property
    def read_timeout(self) -> float | None:
        return self._read_timeout

    async def initialize(self) -> None:
        return None

    async def shutdown(self) -> None:
        tasks, self._tasks = set(self._tasks), set()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def do_request(
        self,
        url: str,
        method: str,
        request_data: RequestData | None = None,
        read_timeout: ODVInput[float] = BaseRequest.DEFAULT_NONE,
        write_timeout: ODVInput[float] = BaseRequest.DEFAULT_NONE,
        connect_timeout: ODVInput[float] = BaseRequest.DEFAULT_NONE,
        pool_timeout: ODVInput[float] = BaseRequest.DEFAULT_NONE,
    ) -> tuple[int, bytes]:
        path = unquote(urlsplit(url).path)  # PTB percent-encodes file URLs (":" -> "%3A")
        if file_match := _FILE_PATH_RE.fullmatch(path):
            stored = self._api.file_by_path(file_match["token"], file_match["path"])
            if stored is None or stored.data is None:
                return 404, _envelope_bytes(_NOT_FOUND)
            return 200, stored.data
        api_match = _API_PATH_RE.fullmatch(path)
        if api_match is None:
            return 404, _envelope_bytes(_NOT_FOUND)
        fields, files = _fields_from_request_data(request_data)
        task = asyncio.ensure_future(
            self._api.handle(api_match["token"], api_match["method"], fields, files)
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        timeout = self._read_timeout if isinstance(read_timeout, DefaultValue) else read_timeout
        try:
            status, body = await asyncio.wait_for(asyncio.shield(task), timeout)
        except TimeoutError as exc:
            raise TimedOut from exc
        return status, _envelope_bytes(body)
