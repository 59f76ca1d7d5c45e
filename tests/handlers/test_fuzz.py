"""Hostile input: thousands of generated updates through the real Application.

Hypothesis draws, example after example, a run of updates from five interleaved users: random
and hostile text (RTL, emoji, zero-width and control characters, whitespace, 5,000 characters),
every command (from content/, topics included) with random arguments, taps through the flows
the bot offers, button presses (stale ones, forged data, data transplanted from other
messages, presses on another user's message and on messages Telegram reports as
inaccessible), edited messages, group, supergroup and channel messages, media, locations (also
impossible ones), contacts, blocking and unblocking, and time passing. Each update is built the
way Telegram sends it and fed to ``Application.process_update``, as ``ChatDriver.feed`` does.
After every update the test checks:

1. nothing broke: ``process_update`` did not raise and nothing was logged at ERROR;
2. every new private message (every command included) got at least one answer in its chat,
   every callback query exactly one ``answerCallbackQuery``; edits, channel posts, membership
   changes and group chatter get no answer at all (in groups only /start and /help do), and
   the bot never posts into a group because of a button;
3. the fake Bot API never answered 4xx (too long, bad HTML, over-long callback data, a message
   that cannot be edited, an answered query answered again ...); "message is not modified"
   is the one exception, as the bot handles it;

and after every example that the database is consistent (``database_problems``: no orphans,
IANA zones only, values that fit their columns, check-ins and drafts that decrypt, ...).

The run is deterministic (``derandomize=True``); each example starts from an empty database,
with flood control off. By default every update is driven and the test fails at the end
listing the distinct problems, each with the first update that showed it and what led up to
it. Environment variables:

* ``BACKCALM_FUZZ_EXAMPLES`` (default 42) and ``BACKCALM_FUZZ_UPDATES`` (per example, default
  120): at least 5,040 updates, about a minute on SQLite;
* ``BACKCALM_FUZZ_SHRINK=1``: stop at the first problem and let Hypothesis shrink the example
  to a minimal run of updates (give it short examples, e.g. ``BACKCALM_FUZZ_UPDATES=20``;
  shrinking stops after five minutes).

The tests after the fuzz test replay, as small as they get, the failures the fuzzer found.
"""

from __future__ import annotations

import asyncio
import importlib.resources
import itertools
import logging
import os
import time
import traceback
from collections import Counter
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from sqlalchemy import String, func, select
from telegram import Update

from bot import keyboards
from bot.app import BotApplication
from bot.config import Settings
from bot.content import Content
from bot.crypto import DecryptionError, Keyring, token_key_id
from bot.db.models import Base, CheckIn, CheckInDraft, Schedule, TipFeedback, TipView, User
from bot.runtime import Runtime
from bot.services import checkins
from tests.fakes.telegram_api import NOT_MODIFIED, FakeBotAPI, FakeMessage, RecordedCall

# Telegram does not tell a bot that someone deleted a message in their private chat: an edit
# failing with "message to edit not found" is how the bot learns it, and it then sends a new
# message instead. Like "message is not modified", that 400 is expected and handled.
HANDLED_4XX = (NOT_MODIFIED, "message to edit not found")


def _handled_4xx(description: str) -> bool:
    return any(text in description for text in HANDLED_4XX)


T = TypeVar("T")
QUERY_IDS = itertools.count(7_000_000_000)

EXAMPLES = int(os.environ.get("BACKCALM_FUZZ_EXAMPLES", "42"))
UPDATES_PER_EXAMPLE = int(os.environ.get("BACKCALM_FUZZ_UPDATES", "120"))
SHRINK = os.environ.get("BACKCALM_FUZZ_SHRINK", "") not in ("", "0")

USERS = (1001, 1002, 1003, 1004, 1005)
ADMIN = 1005
GROUP = -4001
SUPERGROUP = -1001234567890
CHANNEL = -1009876543210
BOT_USERNAME = "BackCalmTestBot"
# Bot API methods that answer someone in a chat.
ANSWERS = frozenset(
    {"sendMessage", "sendPhoto", "sendDocument", "editMessageText", "editMessageReplyMarkup"}
)
STARTS = (
    datetime(2026, 6, 10, 9, 0, tzinfo=UTC),
    datetime(2026, 3, 29, 0, 30, tzinfo=UTC),  # half an hour before Europe springs forward
    datetime(2026, 10, 25, 0, 30, tzinfo=UTC),  # and before it falls back
    datetime(2026, 12, 31, 23, 59, 30, tzinfo=UTC),
    datetime(2028, 2, 29, 12, 0, tzinfo=UTC),
)
# Every zone tzdata ships, minus the legacy names: what a stored zone must be to work on any
# host (ZoneInfo() alone also accepts whatever the host has, e.g. "posixrules", "right/UTC").
IANA_ZONES = frozenset(
    importlib.resources.files("tzdata").joinpath("zones").read_text("utf-8").split()
) - {"Factory", "localtime", "posixrules"}


@pytest.fixture(name="database_url")
def sqlite_only(tmp_path: Path) -> str:
    """The fuzz run is about handlers, not storage, so it runs on SQLite only; the column
    checks below still catch values PostgreSQL would refuse."""
    return f"sqlite+aiosqlite:///{tmp_path / 'fuzz.db'}"


@pytest.fixture(name="settings")
def fuzz_settings(make_settings: Callable[..., Settings]) -> Settings:
    """Flood control off (a fuzzer floods by nature, and flood control has its own tests)."""
    return make_settings(
        flood_max_updates=1000,
        flood_window_seconds=0.001,
        flood_pause_seconds=0,
        admin_ids=str(ADMIN),
    )


# ============================================================================ hostile input

ZERO_WIDTH = "\u200b\u200c\u200d\u2060\ufeff"
BIDI = "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f\u061c"
CONTROL = "\x00\x01\x07\x08\x0b\x0c\x1b\x7f\x85\u2028\u2029"
SPACES = " \t\n\r\u00a0\u1680\u2003\u2007\u202f\u205f\u3000"
ODD_DIGITS = "²³¹٣٤۵०१߁௫๓໓༣၅០᠑１２③⑩"
EMOJI = "😀👨‍👩‍👧‍👦🏳️‍🌈🇩🇪👍🏽🧘‍♀️❤️🔥🫠0️⃣"
CHARS = EMOJI + ZERO_WIDTH + BIDI + CONTROL + SPACES + ODD_DIGITS + "<>&\"'/:@#=-_.,"
PHRASES = (
    *("مرحبا، ظهري يؤلمني", "שלום, כואב לי הגב", "Привет, болит спина", "背中が痛い", "नमस्ते"),
    *("I can't sleep", "stressed at work", "my back hurts so much", "hi", "help", "start"),
    "numbness in my legs and I can't control my bladder",
    *("I want to end my life", "I don't want to live anymore"),
    *("<b>bold</b>", "<i>unclosed", "</b>", "a < b && c > d", "&amp; &lt; &#0; &bogus;"),
    *('<a href="javascript:alert(1)">x</a>', "<tg-spoiler>s</tg-spoiler>", "\\", "ß"),
    *("{name_part} {command} {0} {{", "%s %d %(x)s", "'; DROP TABLE users; --"),
    *("ｓｌｅｅｐ", "Ｓｔｒｅｓｓ", "İstanbul", "pain=6 stress=4", "/start"),
)
ZONES_TYPED = (
    *("Berlin", "new york", "Europe/Berlin", "UTC+2", "+05:30", "GMT-3", "-0330", "UTC+15"),
    *("+99:99", "UTC-12:60", "Z", "Paris, Texas", "Birmingham AL", "Mars/Olympus", "Europe"),
    *("America/Argentina", "localtime", "posixrules", "right/UTC", "../../etc/passwd"),
    *("Europe/Berlin/", "São Paulo", "Kyiv", "ベルリン", "Springfield", "Germany", "us"),
    "a" * 101,
)
TIMES_TYPED = (
    *("25:99", "8:30", "24:00", "23:59", "noon", "midnight", "12am", "0pm", "13pm"),
    *("8.30 p.m.", "2030", "20h", "20h30", "7:5", "-1", "٨:٣٠", "８:３０", "8:30:15"),
    "99999999999999999999",
)
NUMBERS = (
    *("0", "1", "3", "7", "90", "91", "-1", "-0", "+3", "3.5", "1e3", "0x10", "007"),
    *("٣", "²", "①", "99999999999999999999999", "9" * 300),
)
CHECKIN_FORMS = (
    *("6 4", "6 4 3 2", "6 4 3 2 walked by the river", "0 0 1 1", "10 10 5 5", "11", "-1 4"),
    *("6 4 3 9", "pain=6 stress=4", "p=6 s=4 m=3 sl=2", "pain=11", "p=-1", "m=0", "sl=6"),
    *("mood=3 sleep=4", "foo=3", "6 4 pain=3", "pain:5", "pain = 5", "6 ² 3", "stress=٣"),
    *("6 4 sleep=x", "6 4 " + "note " * 120, "note only"),
)
START_PAYLOADS = ("topic-sleep", "topic-", "topic-nope", "topic-SLEEP", "x" * 64)
ZONE_KEYS = (
    *("Europe/Berlin", "America/New_York", "UTC", "Etc/GMT-14", "Etc/GMT+12", "Asia/Kolkata"),
    *("Europe", "America/Argentina", "Mars/Olympus", "localtime", "posixrules", "Factory"),
    *("right/UTC", "posix/Europe/Berlin", "EST5EDT", "Etc/GMT+99", "../etc", "Europe/Berlin/"),
    *("zone.tab", "__init__.py", "tzdata.zi", "europe/berlin", "Europe/Berlin\x00", "a" * 61),
)
# Callback data: plausible arguments per action, by position. Actions added later without an
# entry here still get random arguments.
PLAUSIBLE: dict[str, tuple[tuple[str, ...], ...]] = {
    "fb": (("h", "n", "x", "H"), ("stress-01", "sleep-03", "nope-01", "any")),
    "tip": (("any", "sleep", "stress", "nope", "ANY"),),
    "tz": (ZONE_KEYS,),
    "tm": (("0830", "2359", "2400", "2599", "8", "noon", "-100", "²³", "0000"),),
    "set": (
        (
            *("zone", "time", "focus", "rtime", "weekly", "rem", "pause", "resume", "off", "on"),
            *("main", "t0830", "t2599", "r2000", "r9999", "t", "r", "tnoon", "rnoon", "x"),
        ),
    ),
    "focus": (("sleep", "stress", "mood", "nope", "SLEEP"),),
    "topic": (("sleep", "stress", "mood", "nope", "SLEEP"),),
    "tfocus": (("sleep", "stress", "mood", "nope", "SLEEP"),),
    "priv": (("revoke", "delchk", "keep", "x"),),
    "del": (("yes", "no", "x"), ("0", "1", "9999999999", "²", "٣", "-1", "1e9")),
    "rem": (("60", "180", "skip", "0", "-60", "²", "99999999999"),),
    "ck": (
        ("consent", "nav", "pain", "stress", "mood", "sleep", "note", "x"),
        ("yes", "no", "back", "skip", "cancel", "start", "0", "5", "10", "11", "-1", "²", "x"),
    ),
}
ODD_ARGUMENTS = ("", "x", "any", "0", "-1", "²", "٣", "99999999999", ":", "main", "yes")
COORDINATES = (
    *((52.52, 13.405), (40.7128, -74.006), (-33.8688, 151.2093), (0.0, 0.0), (51.4779, -0.0015)),
    *((91.0, 181.0), (-91.0, -181.0), (90.0, 180.0), (-90.0, -180.0), (1e308, -1e308)),
)
MEDIA = (
    *("sticker", "photo", "voice", "video", "video_note", "audio", "document", "animation"),
    *("contact", "dice", "poll", "venue"),
)
GROUP_TEXTS = (
    *("/start", "/help", f"/start@{BOT_USERNAME}", "/help@OtherBot", "/START", "/export"),
    *("/checkin 6 4", "/timezone Berlin", "/tip", "/delete", "/settings", "/start topic-sleep"),
)
LANGUAGES = ("en", "de", "pt-br", "zh-hans", "ar", "he", "uk", "en-GB", "xx", "EN_us")
LONG_LANGUAGE = "en-US-u-mu-celsius-x-foo"  # valid BCP 47, 24 characters
NAMES = ("Alex", "<b>Bob</b>", "&", "Zoë", "محمد", "👍", "\u202eevil", "A" * 64, "ㅤ")
MEMBERSHIP = ("block", "unblock", "join", "add", "admin", "leave", "kick", "channel")
ADVANCES = (1, 5, 29, 31, 60, 6 * 60, 24 * 60, 3 * 24 * 60, 50 * 24 * 60)
# Commands whose answer has buttons to go on with, as often as a flow starts with them.
FLOW_STARTERS = (
    *("checkin", "checkin", "checkin", "settings", "settings", "topics", "topics", "tip"),
    *("subscribe", "time", "delete", "privacy", "timezone Berlin", "timezone Paris, Texas"),
    *("timezone Sydney", "pause 3", "resume", "history", "trends"),
)
FLAVOURS = ("plain", "plain", "plain", "forwarded", "reply", "via_bot", "command_inside")
# The kinds of step and their weights; the first is what shrinking falls back to.
KINDS = {
    "command": 24,
    "text": 12,
    "press visible": 16,
    "flow": 8,
    "press forged": 7,
    "press transplanted": 4,
    "press other": 3,
    "press old": 4,
    "press in group": 2,
    "edit": 3,
    "group": 5,
    "channel": 1,
    "media": 4,
    "location": 3,
    "membership": 2,
    "rename": 2,
    "advance": 2,
    "delete": 1,
}


def repeated(unit: st.SearchStrategy[str], limit: int = 5000) -> st.SearchStrategy[str]:
    """A long string from a short one: cheap for Hypothesis' per-example budget."""
    return st.builds(
        lambda text, times: (text * times)[:limit],
        unit,
        st.sampled_from((100, 1000, 4000, 4096, 4097, 5000)),
    )


def texts() -> st.SearchStrategy[str]:
    odd = st.text(alphabet=st.sampled_from(CHARS), min_size=1, max_size=12)
    return st.one_of(
        st.sampled_from(PHRASES),
        st.text(min_size=1, max_size=30),
        odd,
        st.text(alphabet=st.sampled_from(SPACES + ZERO_WIDTH), min_size=1, max_size=8),
        st.builds("{}{}".format, st.sampled_from(PHRASES), odd),
        repeated(st.one_of(st.sampled_from(PHRASES), odd, st.text(min_size=1, max_size=4))),
    )


def fit_callback(data: str) -> str:
    """At most 64 bytes and never empty: what Telegram can deliver."""
    return data.encode()[: keyboards.CALLBACK_LIMIT].decode("utf-8", "ignore") or "x"


# ============================================================================ steps

Pick = int  # picks among the candidates that exist when the step runs, newest first


@dataclass(frozen=True)
class Command:
    user: int
    name: str
    args: str = ""


@dataclass(frozen=True)
class Text:
    user: int
    text: str
    flavour: str = "plain"


@dataclass(frozen=True)
class Media:
    user: int
    kind: str
    caption: str | None = None
    chat: int | None = None  # None: the user's private chat


@dataclass(frozen=True)
class Location:
    user: int
    latitude: float
    longitude: float
    venue: bool = False


@dataclass(frozen=True)
class PressVisible:
    """A button the user sees under one of the bot's messages in their chat (maybe stale)."""

    user: int
    message: Pick
    button: int


@dataclass(frozen=True)
class Flow:
    """Maybe a command first, then the user taps through what the bot's newest message with
    buttons offers, a button after another, then maybe types something (a check-in note)."""

    user: int
    command: str | None
    buttons: tuple[int, ...]
    then: str | None = None


@dataclass(frozen=True)
class PressForged:
    """Made-up data on one of the bot's messages in the user's chat."""

    user: int
    message: Pick
    data: str | None  # None: a game button, no data


@dataclass(frozen=True)
class PressTransplanted:
    """Real data from any message of the run (any user's), pressed on another message."""

    user: int
    message: Pick
    source: Pick


@dataclass(frozen=True)
class PressOther:
    """A button under a message in another user's private chat."""

    user: int
    owner: int
    message: Pick
    button: int


@dataclass(frozen=True)
class PressOld:
    """A real button on a message Telegram reports as inaccessible (date 0), as it does for
    old ones (PTB 22 still makes it a Message, dated 1970, so edits go ahead)."""

    user: int
    message: Pick
    button: int


@dataclass(frozen=True)
class PressInGroup:
    """Data on one of the bot's messages in a group (it sends no buttons there)."""

    user: int
    chat: int
    message: Pick
    data: str | None


@dataclass(frozen=True)
class Edit:
    user: int
    chat: int | None
    text: str
    command: bool = False


@dataclass(frozen=True)
class Group:
    user: int
    chat: int
    text: str
    command: bool = False


@dataclass(frozen=True)
class ChannelPost:
    text: str
    edited: bool = False


@dataclass(frozen=True)
class Membership:
    user: int
    change: str


@dataclass(frozen=True)
class Rename:
    """Not an update: the user's name and language change for what they send next."""

    user: int
    first_name: str
    language_code: str | None


@dataclass(frozen=True)
class Advance:
    """Not an update: time passes."""

    minutes: int


@dataclass(frozen=True)
class DeleteMessage:
    """Not an update: the user deletes one of the bot's messages (Telegram does not tell bots)."""

    user: int
    message: Pick


Step = (
    Command
    | Text
    | Media
    | Location
    | PressVisible
    | Flow
    | PressForged
    | PressTransplanted
    | PressOther
    | PressOld
    | PressInGroup
    | Edit
    | Group
    | ChannelPost
    | Membership
    | Rename
    | Advance
    | DeleteMessage
)


class Draws:
    """Every strategy a step needs, built once (building strategies per draw is slow)."""

    def __init__(self, content: Content) -> None:
        commands = [c.command for c in content.commands()]
        commands += [t for t in content.topics if t not in commands]
        self.kind = st.sampled_from([k for k, weight in KINDS.items() for _ in range(weight)])
        self.user = st.sampled_from(USERS)
        self.others = {u: st.sampled_from([o for o in USERS if o != u]) for u in USERS}
        # Mostly the newest message (flows go on there), sometimes an older one (stale).
        self.pick = st.sampled_from((0, 0, 0, 0, 0, 0, 1, 1, 2, 3, 5, 8, 12))
        self.button = st.integers(0, 20)
        # Flows mostly take the first buttons (answers, "agree", "skip"), now and then the
        # last ones (back, cancel).
        flow_button = st.sampled_from((0, 0, 1, 2, 3, 4, 0, 1, 5, 7, 11, 20))
        self.buttons = st.lists(flow_button, min_size=1, max_size=8)
        self.source = st.integers(0, 200)
        self.group = st.sampled_from((GROUP, SUPERGROUP))
        self.edit_chat = st.sampled_from((None, None, GROUP, SUPERGROUP))
        self.media_chat = st.sampled_from((None, None, None, GROUP))
        self.flag = st.booleans()
        self.text = texts()
        self.maybe_text = st.one_of(st.none(), self.text)
        self.flavour = st.sampled_from(FLAVOURS)
        self.media = st.sampled_from(MEDIA)
        self.coordinates = st.one_of(
            st.sampled_from(COORDINATES),
            st.tuples(st.floats(-100, 100), st.floats(-200, 200)),
        )
        self.group_text = st.one_of(st.sampled_from(GROUP_TEXTS), self.text)
        self.membership = st.sampled_from(MEMBERSHIP)
        self.name = st.one_of(st.sampled_from(NAMES), st.text(min_size=1, max_size=64))
        self.language = st.one_of(
            st.sampled_from(LANGUAGES),
            st.just(LONG_LANGUAGE),
            st.none(),
            st.text(alphabet="abcdefghijklmnopqrstuvwxyz-_", min_size=1, max_size=35),
        )
        self.advance = st.sampled_from(ADVANCES)
        # Commands: known ones (also in capitals, addressed to this bot or another), near
        # misses, anything a client lets through; arguments per command, or anything.
        known = st.sampled_from(commands)
        self.flow_start = st.sampled_from((None, *FLOW_STARTERS))
        # (st.one_of drops repeated branches, so weights come from sampled_from.)
        self.command_kind = st.sampled_from((0, 0, 0, 1, 2, 3, 4, 5, 6))
        self.commands = (
            known,
            known.map(str.upper),
            known.map(lambda name: f"{name}@{BOT_USERNAME}"),
            known.map(lambda name: f"{name}@OtherBot"),
            st.sampled_from(("admin", "cancel", "stop", "settings_", "tips", "start_")),
            st.from_regex(r"[a-z0-9_]{1,32}", fullmatch=True),
            st.text(alphabet=st.sampled_from(CHARS + "abc"), min_size=1, max_size=6),
        )
        anything = st.one_of(self.text, st.sampled_from(NUMBERS + TIMES_TYPED + ZONES_TYPED))
        numbers = st.sampled_from(NUMBERS)
        specific = {
            "start": st.sampled_from(START_PAYLOADS + tuple(f"topic-{t}" for t in content.topics)),
            "timezone": st.sampled_from(ZONES_TYPED),
            "time": st.sampled_from(TIMES_TYPED),
            "pause": st.one_of(numbers, st.builds("{} {}".format, numbers, numbers)),
            "checkin": st.sampled_from(CHECKIN_FORMS),
        }
        self.args = specific
        self.args_kind = st.sampled_from(("none", "none", "specific", "anything"))
        self.anything = anything
        # Callback data: every action with plausible arguments, or too few, too many and odd
        # ones; random text and bytes; no data at all (a game button).
        argument = st.one_of(
            st.sampled_from(ODD_ARGUMENTS),
            st.sampled_from(ZONE_KEYS),
            st.sampled_from(tuple(content.topics)),
            st.sampled_from(tuple(content.tips)),
            st.text(max_size=10),
        )
        self.action = st.sampled_from(sorted(keyboards.ACTIONS))
        self.arguments = {
            action: st.lists(argument, min_size=max(count - 1, 0), max_size=count + 1)
            for action, count in keyboards.ACTIONS.items()
        }
        self.plausible = {
            action: [st.sampled_from(pool) for pool in PLAUSIBLE.get(action, ())]
            for action in keyboards.ACTIONS
        }
        self.data_kind = st.sampled_from(("plausible",) * 3 + ("odd",) * 2 + ("text", "bytes"))
        self.data_at_all = st.integers(0, 30)  # 0: a game button, no data
        self.data_text = st.text(min_size=1, max_size=64)
        self.data_bytes = st.binary(min_size=1, max_size=64)
        self.strategy = st.composite(lambda draw: self.step(draw))()

    def callback_data(self, draw: st.DrawFn) -> str | None:
        kind = draw(self.data_kind) if draw(self.data_at_all) else "none"
        if kind == "none":
            return None
        if kind == "text":
            return fit_callback(draw(self.data_text))
        if kind == "bytes":
            return fit_callback(draw(self.data_bytes).decode("utf-8", "replace"))
        action = draw(self.action)
        pools = self.plausible[action]
        if kind == "plausible" and len(pools) == keyboards.ACTIONS[action]:
            args = [draw(pool) for pool in pools]
        else:
            args = draw(self.arguments[action])
        return fit_callback(keyboards.SEPARATOR.join((action, *args)))

    def step(self, draw: st.DrawFn) -> Step:  # one branch per kind of step
        kind, user = draw(self.kind), draw(self.user)
        match kind:
            case "command":
                name = draw(self.commands[draw(self.command_kind)])
                args = draw(self.args_kind)
                specific = self.args.get(name.split("@", 1)[0].lower())
                if args == "none":
                    return Command(user, name)
                if args == "specific" and specific is not None:
                    return Command(user, name, draw(specific))
                return Command(user, name, draw(self.anything))
            case "text":
                return Text(user, draw(self.text), draw(self.flavour))
            case "press visible":
                return PressVisible(user, draw(self.pick), draw(self.button))
            case "flow":
                start = draw(self.flow_start)
                return Flow(user, start, tuple(draw(self.buttons)), draw(self.maybe_text))
            case "press forged":
                return PressForged(user, draw(self.pick), self.callback_data(draw))
            case "press transplanted":
                return PressTransplanted(user, draw(self.pick), draw(self.source))
            case "press other":
                return PressOther(user, draw(self.others[user]), draw(self.pick), draw(self.button))
            case "press old":
                return PressOld(user, draw(self.pick), draw(self.button))
            case "press in group":
                chat, pick = draw(self.group), draw(self.pick)
                return PressInGroup(user, chat, pick, self.callback_data(draw))
            case "edit":
                return Edit(user, draw(self.edit_chat), draw(self.text), draw(self.flag))
            case "group":
                return Group(user, draw(self.group), draw(self.group_text), draw(self.flag))
            case "channel":
                return ChannelPost(draw(self.text), draw(self.flag))
            case "media":
                return Media(user, draw(self.media), draw(self.maybe_text), draw(self.media_chat))
            case "location":
                latitude, longitude = draw(self.coordinates)
                return Location(user, latitude, longitude, draw(self.flag))
            case "membership":
                return Membership(user, draw(self.membership))
            case "rename":
                return Rename(user, draw(self.name), draw(self.language))
            case "advance":
                return Advance(draw(self.advance))
        return DeleteMessage(user, draw(self.pick))


# ============================================================================ the world


@dataclass(frozen=True)
class Problem:
    """A property one update (or the database after an example) violated."""

    signature: str  # what kind of problem, to tell distinct ones apart
    detail: str


@dataclass
class Profile:
    first_name: str = "Alex"
    language_code: str | None = "en"
    username: str | None = None


Feed = Coroutine[Any, Any, None]


def utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def short(value: object, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}…({len(text)} chars)"


def where_raised(exc: BaseException) -> str:
    """The exception type and the innermost frame in bot/ that raised it."""
    frames = traceback.extract_tb(exc.__traceback__)
    ours = [f for f in frames if "/bot/" in f.filename]
    frame = ours[-1] if ours else (frames[-1] if frames else None)
    if frame is None:
        return type(exc).__name__
    return f"{type(exc).__name__} at {frame.filename.rsplit('/bot/', 1)[-1]}:{frame.name}"


def log_signature(record: logging.LogRecord) -> str:
    if record.exc_info and record.exc_info[1] is not None:
        return f"ERROR logged: {where_raised(record.exc_info[1])}"
    return f"ERROR logged: {record.getMessage()[:60]}"


def trace(exc: BaseException) -> str:
    """The frames in bot/ (where it went wrong) and the exception."""
    frames = traceback.extract_tb(exc.__traceback__)
    ours = [f for f in frames if "/bot/" in f.filename] or frames[-3:]
    lines = [f"  {f.filename.rsplit('/bot/', 1)[-1]}:{f.lineno} {f.name}: {f.line}" for f in ours]
    return "\n".join([*lines, f"  {type(exc).__name__}: {exc}"])


def log_detail(record: logging.LogRecord) -> str:
    if record.exc_info and record.exc_info[1] is not None:
        return f"{record.getMessage()}\n{trace(record.exc_info[1])}"
    return record.getMessage()


def callback_shape(data: str | None) -> str:
    """ "'tz' with 0 args": enough to tell problems apart without listing every input."""
    if data is None:
        return "no data"
    action, *args = data.split(keyboards.SEPARATOR)
    if action not in keyboards.ACTIONS:
        return "unknown action"
    return f"{action!r} with {len(args)} args" + (", one empty" if "" in args else "")


def describe_calls(calls: Sequence[RecordedCall]) -> str:
    return "Bot API calls: " + (", ".join(c.summary() for c in calls) or "none")


class World:
    """One example's users, chats and messages: turns steps into updates and checks each."""

    def __init__(
        self,
        app: BotApplication,
        api: FakeBotAPI,
        runtime: Runtime,
        records: Callable[[], Sequence[logging.LogRecord]],
    ) -> None:
        self.app, self.api, self.runtime, self.records = app, api, runtime, records
        self.profiles = {user: Profile(username=f"user{user}") for user in USERS}
        self.blocked: set[int] = set()
        self.first_bot_message = len(api.sent_messages())
        self.history: list[str] = []
        self.problems: list[Problem] = []
        self.updates = 0
        self.kinds: Counter[str] = Counter()

    # ---------------------------------------------------------------- Telegram's objects

    def now(self) -> int:
        return int(self.runtime.clock.now().timestamp())

    def user_json(self, user: int) -> dict[str, Any]:
        profile = self.profiles[user]
        data: dict[str, Any] = {
            "id": user,
            "is_bot": False,
            "first_name": profile.first_name,
            "username": profile.username,
        }
        if profile.language_code is not None:
            data["language_code"] = profile.language_code
        return data

    def chat_json(self, user: int, chat: int | None) -> dict[str, Any]:
        if chat is None:
            profile = self.profiles[user]
            return {
                "id": user,
                "type": "private",
                "first_name": profile.first_name,
                "username": profile.username,
            }
        if chat == CHANNEL:
            return {"id": chat, "type": "channel", "title": "BackCalm fans"}
        if chat == SUPERGROUP:
            return {"id": chat, "type": "supergroup", "title": "Back club", "is_forum": True}
        return {"id": chat, "type": "group", "title": "Back pain chat"}

    def bot_json(self) -> dict[str, Any]:
        return {
            "id": self.api.bot_id,
            "is_bot": True,
            "first_name": "BackCalm Test",
            "username": BOT_USERNAME,
        }

    def message(self, user: int, chat: int | None, **content: Any) -> dict[str, Any]:
        raw: dict[str, Any] = {
            "from": self.user_json(user),
            "chat": self.chat_json(user, chat),
            "date": self.now(),
            **content,
        }
        if chat == SUPERGROUP:
            raw.update(message_thread_id=7, is_topic_message=True)
        return raw

    @staticmethod
    def command_content(name: str, args: str = "") -> dict[str, Any]:
        head = "/" + name
        return {
            "text": f"{head} {args}" if args else head,
            "entities": [{"type": "bot_command", "offset": 0, "length": utf16_len(head)}],
        }

    def bot_messages(self, chat: int, *, with_buttons: bool = False) -> list[FakeMessage]:
        """The bot's messages in `chat` from this example, newest first, not deleted."""
        found = [
            m
            for m in self.api.sent_messages()[self.first_bot_message :]
            if m.chat_id == chat and not m.deleted and (self.callbacks(m) or not with_buttons)
        ]
        return found[::-1]

    @staticmethod
    def callbacks(message: FakeMessage) -> list[str]:
        rows = (message.reply_markup or {}).get("inline_keyboard") or []
        return [b["callback_data"] for row in rows for b in row if b.get("callback_data")]

    # ---------------------------------------------------------------- steps to updates

    def updates_for(self, step: Step) -> list[Feed]:
        """The updates a step becomes (none for steps that are not updates), to be fed in turn."""
        user = getattr(step, "user", None)
        feeds = []
        if user in self.blocked and not isinstance(step, Membership | Rename | DeleteMessage):
            # Someone who blocked the bot sends nothing: coming back, they unblock first.
            feeds.append(self.membership(Membership(user, "unblock")))
        return feeds + self.dispatch(step)

    def dispatch(self, step: Step) -> list[Feed]:
        match step:
            case Rename(user, first_name, language):
                self.profiles[user] = Profile(first_name, language, self.profiles[user].username)
            case Advance(minutes):
                self.runtime.clock.advance(timedelta(minutes=minutes))
                self.history.append(f"   (time passes: {minutes} min)")
            case DeleteMessage(user, pick):
                if candidates := self.bot_messages(user):
                    target = candidates[pick % len(candidates)]
                    target.deleted = True
                    self.history.append(f"   (u{user} deletes bot message {target.message_id})")
            case Command(user, name, args):
                raw = self.message(user, None, **self.command_content(name, args))
                return [self.private(user, raw, "command", f"/{name} {short(args)}")]
            case Text(user, text, flavour):
                raw = self.message(user, None, **self.text_content(user, text, flavour))
                return [self.private(user, raw, "text", f"[{flavour}] {short(text)}")]
            case Media(user, kind, caption, chat):
                raw = self.message(user, chat, **media_content(kind, caption, user))
                if chat is None:
                    return [self.private(user, raw, "media", f"{kind} caption={short(caption)}")]
                return [self.quiet({"message": raw}, "group media", f"u{user} {kind} in {chat}")]
            case Location(user, latitude, longitude, venue):
                point = {"latitude": latitude, "longitude": longitude}
                content: dict[str, Any] = {"location": point}
                if venue:
                    content["venue"] = {"location": point, "title": "Clinic", "address": "Main St"}
                raw = self.message(user, None, **content)
                return [self.private(user, raw, "location", f"{latitude},{longitude}")]
            case PressVisible(user, pick, button):
                if not (candidates := self.bot_messages(user, with_buttons=True)):
                    return self.dispatch(Command(user, ("topics", "settings", "tip")[pick % 3]))
                target = candidates[pick % len(candidates)]
                shown = self.callbacks(target)
                return [self.press(user, target, shown[button % len(shown)], "visible", "own")]
            case Flow(user, command, buttons, then):
                return [self.flow(user, command, buttons, then)]
            case PressForged(user, pick, data):
                if not (candidates := self.bot_messages(user)):
                    return self.dispatch(Command(user, "start"))
                target = candidates[pick % len(candidates)]
                return [self.press(user, target, data, "forged", "own")]
            case PressTransplanted(user, pick, source):
                seen = [
                    data
                    for message in self.api.sent_messages()[self.first_bot_message :]
                    for data in self.callbacks(message)
                ]
                if not (candidates := self.bot_messages(user)) or not seen:
                    return self.dispatch(Command(user, "settings"))
                data = seen[-1 - source % len(seen)]
                target = candidates[pick % len(candidates)]
                return [self.press(user, target, data, "transplanted", "own")]
            case PressOther(user, owner, pick, button):
                candidates = self.bot_messages(owner, with_buttons=True)
                if owner in self.blocked or not candidates:
                    return self.dispatch(PressVisible(user, pick, button))
                target = candidates[pick % len(candidates)]
                shown = self.callbacks(target)
                return [
                    self.press(user, target, shown[button % len(shown)], "other", f"u{owner}'s")
                ]
            case PressOld(user, pick, button):
                if not (candidates := self.bot_messages(user, with_buttons=True)):
                    return self.dispatch(Command(user, "tip"))
                target = candidates[pick % len(candidates)]
                shown = self.callbacks(target)
                return [self.press_inaccessible(user, target, shown[button % len(shown)])]
            case PressInGroup(user, chat, pick, data):
                if not (candidates := self.bot_messages(chat)):
                    return self.dispatch(Group(user, chat, "/start", command=True))
                target = candidates[pick % len(candidates)]
                return [self.press(user, target, data, "in group", f"in {chat}", in_group=True)]
            case Edit(user, chat, text, command):
                return [self.edit(user, chat, text, command)]
            case Group(user, chat, text, command):
                return [self.group(user, chat, text, command)]
            case ChannelPost(text, edited):
                return [self.channel_post(text, edited)]
            case Membership():
                return [self.membership(step)]
        return []

    def text_content(self, user: int, text: str, flavour: str) -> dict[str, Any]:
        content: dict[str, Any] = {"text": text}
        if flavour == "forwarded":
            content["forward_origin"] = {
                "type": "hidden_user",
                "date": self.now() - 3600,
                "sender_user_name": "Someone",
            }
        elif flavour == "reply" and (earlier := self.bot_messages(user)):
            content["reply_to_message"] = {
                "message_id": earlier[0].message_id,
                "from": self.bot_json(),
                "chat": self.chat_json(user, None),
                "date": earlier[0].date,
                "text": earlier[0].plain_text or "…",
            }
        elif flavour == "via_bot":
            content["via_bot"] = {"id": 42, "is_bot": True, "first_name": "gif", "username": "gif"}
        elif flavour == "command_inside":  # a command entity that is not at the start
            content["text"] = f"{text} /start"
            offset = utf16_len(text) + 1
            content["entities"] = [{"type": "bot_command", "offset": offset, "length": 6}]
        return content

    def edit(self, user: int, chat: int | None, text: str, command: bool) -> Feed:
        where = user if chat is None else chat
        earlier = [
            m.raw
            for m in self.api.messages(where)
            if not m.from_bot and m.raw is not None and m.user_id == user and "text" in m.raw
        ]
        raw = {k: v for k, v in earlier[-1].items() if k != "entities"} if earlier else None
        if raw is None:
            raw = {**self.message(user, chat), "message_id": 999_999}
        raw.update(self.command_content("checkin", "6 4") if command else {"text": text})
        raw["edit_date"] = self.now()
        label = f"u{user} edits in {where}: {short(raw['text'])}"
        return self.quiet({"edited_message": raw}, "edit", label)

    def group(self, user: int, chat: int, text: str, command: bool) -> Feed:
        content: dict[str, Any] = {"text": text}
        if command or text.startswith("/"):
            name, _, args = text.lstrip("/").partition(" ")
            content = self.command_content(name or "start", args)
        raw = self.message(user, chat, **content)
        update = self.api.send_raw_update({"message": raw})
        # Only /start and /help, unaddressed or addressed to this bot, get an answer.
        first = content["text"].split(maxsplit=1)[0] if content["text"].strip() else ""
        name, _, addressee = first.lstrip("/").lower().partition("@")
        pointer = (
            "entities" in content
            and name in ("start", "help")
            and addressee in ("", BOT_USERNAME.lower())
        )
        label = f"u{user} in {chat}: {short(content['text'])}"
        return self.feed(update, "group", label, chat=chat, answered=pointer, silent=not pointer)

    def channel_post(self, text: str, edited: bool) -> Feed:
        key = "edited_channel_post" if edited else "channel_post"
        post = {
            "message_id": 1,
            "sender_chat": self.chat_json(0, CHANNEL),
            "chat": self.chat_json(0, CHANNEL),
            "date": self.now(),
            **(self.command_content("start") if text.startswith("/") else {"text": text}),
        }
        if edited:
            post["edit_date"] = self.now()
        return self.quiet({key: post}, "channel", f"{key} {short(text)}")

    def membership(self, step: Membership) -> Feed:
        user, change = step.user, step.change
        old, new, chat = {
            "block": ("member", "kicked", None),
            "unblock": ("kicked", "member", None),
            "join": ("left", "member", None),
            "add": ("left", "member", GROUP),
            "admin": ("member", "administrator", SUPERGROUP),
            "leave": ("member", "left", GROUP),
            "kick": ("administrator", "kicked", SUPERGROUP),
            "channel": ("left", "administrator", CHANNEL),
        }[change]
        if chat is None and change == "block":
            self.api.block(user, notify=False)
            self.blocked.add(user)
        elif chat is None:
            self.api.unblock(user, notify=False)
            self.blocked.discard(user)
        change_json = {
            "chat": self.chat_json(user, chat),
            "from": self.user_json(user),
            "date": self.now(),
            "old_chat_member": chat_member(self.bot_json(), old),
            "new_chat_member": chat_member(self.bot_json(), new),
        }
        label = f"u{user} my_chat_member {change}"
        return self.quiet({"my_chat_member": change_json}, "membership", label)

    def press(
        self,
        user: int,
        target: FakeMessage,
        data: str | None,
        kind: str,
        whose: str,
        *,
        in_group: bool = False,
    ) -> Feed:
        update = self.api.press_button(user, target.message_id, data or "x", chat_id=target.chat_id)
        query = update["callback_query"]
        query["from"] = self.user_json(user)
        if data is None:
            del query["data"]
            query["game_short_name"] = "backcalm"
        how = "its button" if data in self.callbacks(target) else kind
        label = f"u{user} presses {short(data)} on {whose} msg {target.message_id} ({how})"
        return self.feed(update, f"press {kind}", label, query=query["id"], in_group=in_group)

    async def flow(
        self, user: int, command: str | None, buttons: tuple[int, ...], then: str | None
    ) -> None:
        if command is not None:
            name, _, args = command.partition(" ")
            raw = self.message(user, None, **self.command_content(name, args))
            await self.private(user, raw, "command", f"/{command} (a flow starts)")
        for button in buttons:
            if not (candidates := self.bot_messages(user, with_buttons=True)):
                break
            shown = self.callbacks(candidates[0])
            await self.press(user, candidates[0], shown[button % len(shown)], "flow", "own")
        if then is not None:
            raw = self.message(user, None, text=then)
            await self.private(user, raw, "text", f"[after a flow] {short(then)}")

    def press_inaccessible(self, user: int, target: FakeMessage, data: str) -> Feed:
        query_id = f"7{next(QUERY_IDS)}"
        old_message = {
            "chat": self.chat_json(user, None),
            "message_id": target.message_id,
            "date": 0,
        }
        query = {
            "id": query_id,
            "from": self.user_json(user),
            "chat_instance": str(-8_000_000_000_000 - user),
            "data": data,
            "message": old_message,
        }
        update = self.api.send_raw_update({"callback_query": query})
        label = f"u{user} presses {data!r} on old msg {target.message_id} (inaccessible)"
        return self.feed(update, "press old", label, query=query_id)

    def private(self, user: int, raw: dict[str, Any], kind: str, label: str) -> Feed:
        """A new message in the user's private chat: it must be answered there."""
        update = self.api.send_raw_update({"message": raw})
        return self.feed(update, kind, f"u{user} {kind} {label}", chat=user, answered=True)

    def quiet(self, update: dict[str, Any], kind: str, label: str) -> Feed:
        """An update the bot must not answer (edits, channel posts, membership changes)."""
        return self.feed(self.api.send_raw_update(update), kind, label, silent=True)

    # ---------------------------------------------------------------- feeding and checking

    async def feed(
        self,
        update: dict[str, Any],
        kind: str,
        label: str,
        *,
        chat: int | None = None,
        answered: bool = False,
        silent: bool = False,
        query: str | None = None,
        in_group: bool = False,
    ) -> None:
        self.updates += 1
        self.kinds[kind] += 1
        self.history.append(f"#{update['update_id']} {label}")
        parsed = Update.de_json(update, self.app.bot)  # failing here is the test's own bug
        calls_before, records_before = len(self.api.calls), len(self.records())
        try:
            await self.app.process_update(parsed)
        except Exception as exc:  # property 1: nothing escapes process_update
            self.problem(f"process_update raised {where_raised(exc)}", trace(exc))
            return
        calls = self.api.calls[calls_before:]
        for record in self.records()[records_before:]:  # property 1: nothing logged at ERROR
            if record.levelno >= logging.ERROR:
                self.problem(log_signature(record), log_detail(record))
        for call in calls:  # property 3: no 4xx
            if call.status >= 400 and not _handled_4xx(call.description or ""):
                signature = f"Bot API {call.status} on {call.method}: {call.description}"
                self.problem(signature, call.summary())
        if answered and not any(c.method in ANSWERS and c.chat_id == chat for c in calls):
            self.problem(f"{kind} in a private chat not answered", describe_calls(calls))
        if silent and calls:
            self.problem(f"{kind}: the bot answered what it must ignore", describe_calls(calls))
        if query is not None:  # property 2: one answer per callback query
            answers = [
                c
                for c in calls
                if c.method == "answerCallbackQuery"
                and str(c.params.get("callback_query_id")) == query
            ]
            if len(answers) != 1:
                data = parsed.callback_query.data if parsed.callback_query else None
                signature = f"callback query answered {len(answers)} times ({callback_shape(data)})"
                self.problem(signature, describe_calls(calls))
            if in_group and any(c.method in ANSWERS and (c.chat_id or 0) < 0 for c in calls):
                self.problem("a press in a group made the bot post there", describe_calls(calls))

    def problem(self, signature: str, detail: str) -> None:
        context = "\n".join(self.history[-10:])
        self.problems.append(
            Problem(signature, f"{detail}\nthe updates that led up to it:\n{context}")
        )


def chat_member(bot: dict[str, Any], status: str) -> dict[str, Any]:
    data: dict[str, Any] = {"user": bot, "status": status}
    if status == "kicked":
        data["until_date"] = 0
    if status == "administrator":
        rights = (
            *("can_manage_chat", "can_delete_messages", "can_manage_video_chats"),
            *("can_restrict_members", "can_promote_members", "can_change_info"),
            *("can_invite_users", "can_post_stories", "can_edit_stories", "can_delete_stories"),
        )
        data.update(dict.fromkeys(rights, False), can_be_edited=False, is_anonymous=False)
    return data


def media_content(kind: str, caption: str | None, user: int) -> dict[str, Any]:
    file = {"file_id": f"F-{kind}", "file_unique_id": f"U-{kind}"}
    point = {"latitude": 1.0, "longitude": 2.0}
    poll = {
        "id": "P1",
        "question": "How is your back?",
        "options": [
            {"text": "ok", "voter_count": 0, "persistent_id": "1"},
            {"text": "bad", "voter_count": 0, "persistent_id": "2"},
        ],
        "total_voter_count": 0,
        "is_closed": False,
        "is_anonymous": True,
        "type": "regular",
        "allows_multiple_answers": False,
        "allows_revoting": True,
        "members_only": False,
    }
    content: dict[str, Any] = {
        "sticker": {
            **file,
            **{"type": "regular", "width": 512, "height": 512, "emoji": "😀"},
            **{"is_animated": False, "is_video": False},
        },
        "photo": [{**file, "width": 90, "height": 90}, {**file, "width": 1280, "height": 960}],
        "voice": {**file, "duration": 3, "mime_type": "audio/ogg"},
        "video": {**file, "width": 640, "height": 480, "duration": 5},
        "video_note": {**file, "length": 240, "duration": 5},
        "audio": {**file, "duration": 180, "title": "Calm"},
        "document": {**file, "file_name": "scan.pdf", "mime_type": "application/pdf"},
        "animation": {**file, "width": 320, "height": 240, "duration": 2},
        "contact": {"phone_number": "+491701234567", "first_name": "Dr. Who", "user_id": user},
        "dice": {"emoji": "🎲", "value": 6},
        "poll": poll,
        "venue": {"location": point, "title": "Gym", "address": "1 Way"},
    }
    message: dict[str, Any] = {kind: content[kind]}
    if kind == "venue":
        message["location"] = point
    if caption is not None and kind in ("photo", "voice", "video", "audio", "document"):
        message["caption"] = caption
    return message


# ============================================================================ the database


async def reset(runtime: Runtime, app: BotApplication, api: FakeBotAPI, start: datetime) -> None:
    """Each example starts from nothing: empty tables, nobody blocked, the clock at `start`."""
    async with runtime.engine.begin() as connection:
        for table in reversed(Base.metadata.sorted_tables):
            await connection.execute(table.delete())
    runtime.clock.set(start)
    runtime.errors.clear()
    app.bot_data.pop("flood", None)
    for user in USERS:
        api.unblock(user, notify=False)


async def database_problems(runtime: Runtime) -> list[tuple[str, str]]:
    """Property 4: (kind of problem, detail) for everything inconsistent in the database."""
    found: list[tuple[str, str]] = []
    content, keys = runtime.content, runtime.keys.get()
    async with runtime.sessions() as session:
        users = {u.id: u for u in await session.scalars(select(User))}
        for table in Base.metadata.sorted_tables:
            for column in table.c:  # what PostgreSQL refuses, SQLite stores: check it here
                limit = getattr(column.type, "length", None)
                if isinstance(column.type, String) and limit:
                    too_long = select(column).where(func.length(column) > limit).limit(1)
                    if (value := await session.scalar(too_long)) is not None:
                        detail = f"{table.name}.{column.name} holds {value!r} ({len(value)})"
                        found.append((f"a value longer than its column ({limit})", detail))
            if "user_id" in table.c:
                owners = set(await session.scalars(select(table.c.user_id).distinct()))
                if orphans := owners - set(users):
                    found.append(("rows of a user who does not exist", f"{table}: {orphans}"))
        for user in users.values():
            if user.timezone is not None and user.timezone not in IANA_ZONES:
                found.append(("a user's time zone is no IANA zone", repr(user.timezone)))
            if unknown := set(user.focus_topics or ()) - set(content.topics):
                found.append(("focus on an unknown topic", repr(unknown)))
            if user.chat_id != user.id:
                detail = f"user {user.id} now gets their messages in chat {user.chat_id}"
                found.append(("a user's chat is not their private chat", detail))
        for schedule in await session.scalars(select(Schedule)):
            owner = users.get(schedule.user_id)
            label = f"{schedule.kind} of {schedule.user_id}"
            if schedule.timezone not in IANA_ZONES:
                found.append(("a schedule's time zone is no IANA zone", repr(schedule.timezone)))
            if owner is None:
                continue
            if owner.timezone is not None and schedule.timezone != owner.timezone:
                detail = f"{label}: {schedule.timezone}, the user's: {owner.timezone}"
                found.append(("a schedule does not follow its user's time zone", detail))
            if (schedule.active and owner.is_active) != (schedule.next_run_at is not None):
                detail = (
                    f"{label}: active={schedule.active}, user active={owner.is_active}, "
                    f"next_run_at={schedule.next_run_at}"
                )
                found.append(("next_run_at contradicts active", detail))
        shown = await session.execute(select(TipView.tip_id, TipView.topic_id))
        rated = await session.execute(select(TipFeedback.tip_id, TipFeedback.topic_id))
        for tip_id, topic_id in [*shown, *rated]:
            if tip_id not in content.tips or topic_id not in content.topics:
                found.append(("a tip view or feedback names an unknown tip", tip_id))
        for checkin in await session.scalars(select(CheckIn)):
            aad = checkins.aad_for(checkin.user_id)
            found += payload_problems(keys, "check-in", checkin.payload, checkin.key_id, aad)
        for draft in await session.scalars(select(CheckInDraft)):
            aad = checkins.aad_for(draft.user_id, "draft")
            found += payload_problems(keys, "draft", draft.payload, draft.key_id, aad)
            if draft.step not in checkins.STEPS:
                found.append(("a draft at an unknown step", draft.step))
    return found


def payload_problems(
    keys: Keyring, what: str, token: bytes, key_id: bytes, aad: bytes
) -> list[tuple[str, str]]:
    """An encrypted check-in or draft must open, name its key, and hold sane scores."""
    try:
        data = keys.decrypt_json(token, aad=aad)
    except DecryptionError as exc:
        return [(f"a {what} does not decrypt", str(exc))]
    found = []
    if token_key_id(token) != key_id:
        found.append((f"a {what}'s key_id is not the key of its payload", key_id.hex()))
    if not isinstance(data, dict):
        return [*found, (f"a {what} payload is no object", type(data).__name__)]
    for name, (low, high) in checkins.RANGES.items():
        value = data.get(name)
        if value is not None and not (isinstance(value, int) and low <= value <= high):
            found.append((f"a {what} holds a score out of range", f"{name}={value!r}"))
    note = data.get("note")
    if note is not None and (not isinstance(note, str) or len(note) > checkins.NOTE_LIMIT):
        found.append((f"a {what} note is too long", f"{len(str(note))} characters"))
    return found


# ============================================================================ the fuzz test


@dataclass
class Totals:
    updates: int = 0
    examples: int = 0
    cut_short: int = 0
    kinds: Counter[str] = field(default_factory=Counter)
    problems: dict[str, list[str]] = field(default_factory=dict)

    def add(self, problem: Problem) -> None:
        self.problems.setdefault(problem.signature, []).append(problem.detail)

    def report(self) -> str:
        lines = [f"{len(self.problems)} distinct problem(s):"]
        for signature, details in sorted(self.problems.items(), key=lambda kv: -len(kv[1])):
            lines.append(f"\n=== {signature}  (x{len(details)}); first seen:\n{details[0]}")
        return "\n".join(lines)


@pytest.mark.slow
async def test_hostile_updates_never_break_the_bot(
    app: BotApplication,
    fake_api: FakeBotAPI,
    runtime: Runtime,
    content: Content,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING)
    loop = asyncio.get_running_loop()
    draws = Draws(content)
    totals = Totals()

    def run(coroutine: Coroutine[Any, Any, T]) -> T:
        """Run on the test's event loop (Hypothesis drives this test from a worker thread)."""
        return asyncio.run_coroutine_threadsafe(coroutine, loop).result()

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        phases=[Phase.generate, Phase.shrink] if SHRINK else [Phase.generate],
        suppress_health_check=[
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
            HealthCheck.large_base_example,
        ],
        print_blob=False,
    )
    @given(data=st.data(), start=st.sampled_from(STARTS))
    def explore(data: st.DataObject, start: datetime) -> None:
        run(reset(runtime, app, fake_api, start))
        world = World(app, fake_api, runtime, lambda: caplog.records)

        def check_database() -> None:
            for kind, detail in run(database_problems(runtime)):
                history = "\n".join(world.history[-10:])
                world.problems.append(Problem(f"database: {kind}", f"{detail}\n{history}"))

        finished = False
        try:
            while world.updates < UPDATES_PER_EXAMPLE and not (SHRINK and world.problems):
                for update in world.updates_for(data.draw(draws.strategy)):
                    run(update)
                if SHRINK:  # stop right at the first problem, so that shrinking can cut
                    check_database()
            finished = True
        finally:  # also when Hypothesis stops an example that outgrew its budget
            if not SHRINK:
                check_database()
            totals.updates += world.updates
            totals.examples += 1
            totals.cut_short += not finished
            totals.kinds.update(world.kinds)
            for problem in world.problems:
                totals.add(problem)
        if SHRINK and world.problems:
            pytest.fail("\n\n".join(f"{p.signature}\n{p.detail}" for p in world.problems))

    began = time.perf_counter()
    await asyncio.to_thread(explore)
    elapsed = time.perf_counter() - began
    not_modified = sum(NOT_MODIFIED in (c.description or "") for c in fake_api.calls)
    summary = (
        f"fuzz: {totals.updates} updates in {totals.examples} examples "
        f"({totals.cut_short} cut short) in {elapsed:.1f}s, "
        f"{1000 * elapsed / max(totals.updates, 1):.1f} ms per update; "
        f"{not_modified} 'message is not modified' handled; by kind: "
        + ", ".join(f"{kind} {count}" for kind, count in totals.kinds.most_common())
    )
    print(summary)
    if totals.problems:
        pytest.fail(f"{summary}\n{totals.report()}", pytrace=False)
    assert totals.updates >= EXAMPLES * UPDATES_PER_EXAMPLE, summary


# ============================================================================ what it found
# Each test below replays, as small as it gets, one failure the fuzz test found, with the same
# checks. They fail until the bot is fixed.


@pytest.fixture
def world(
    app: BotApplication, fake_api: FakeBotAPI, runtime: Runtime, caplog: pytest.LogCaptureFixture
) -> World:
    caplog.set_level(logging.WARNING)
    runtime.clock.set(STARTS[0])
    return World(app, fake_api, runtime, lambda: caplog.records)


async def replay(world: World, *steps: Step) -> None:
    """Feed the steps' updates in turn; fail with every property any of them violated."""
    for step in steps:
        for update in world.updates_for(step):
            await update
    for kind, detail in await database_problems(world.runtime):
        world.problems.append(Problem(f"database: {kind}", detail))
    if world.problems:
        pytest.fail(
            "\n\n".join(f"{p.signature}\n{p.detail}" for p in world.problems), pytrace=False
        )


ME, YOU = USERS[:2]


async def test_found_pause_with_a_superscript_digit(world: World) -> None:
    """ "²".isdigit() is True but int("²") raises: /pause checks with isdigit()."""
    await replay(world, Command(ME, "pause", "²"))


@pytest.mark.parametrize("data", ["tip", "tz::Europe/Berlin", "tm:0830:x", "set", "fb:h", "sub:x"])
async def test_found_malformed_daily_button_gets_no_answer(world: World, data: str) -> None:
    """Data of a daily-tip action that does not decode (an older version's button, say) is
    left unanswered: the user's button spins until Telegram gives up."""
    await replay(world, Command(ME, "start"), PressForged(ME, 0, data))


async def test_found_focus_toggle_on_an_older_topic_message(world: World) -> None:
    """Two topic messages show the focus button; toggling in one, then in the other, edits
    the other to the markup it already has: "message is not modified" is not handled."""
    await replay(
        world,
        Command(ME, "topics"),
        PressForged(ME, 0, "topic:sleep"),  # the menu becomes the topic, "Focus" button
        Command(ME, "topics"),
        PressForged(ME, 0, "topic:sleep"),  # a second one
        PressForged(ME, 0, "tfocus:sleep"),  # focused: the second says so
        PressForged(ME, 1, "tfocus:sleep"),  # unfocused: the first one already says so
    )


async def test_found_checkin_note_after_the_checkin_message_was_deleted(world: World) -> None:
    """The note finishes the check-in by editing the check-in message; if the user deleted
    it, the summary and the tip come as new messages."""
    await replay(
        world,
        Command(ME, "checkin"),
        PressForged(ME, 0, "ck:consent:yes"),
        *(PressForged(ME, 0, f"ck:{step}:3") for step in ("pain", "stress", "mood", "sleep")),
        DeleteMessage(ME, 0),
        Text(ME, "walked by the river"),
    )


@pytest.mark.parametrize("zone", ["Europe", "posixrules", "right/UTC"])
async def test_found_forged_time_zone_button(world: World, zone: str) -> None:
    """tz:<key> is checked with ZoneInfo(key) only: a tzdata folder raises IsADirectoryError
    and host files that are no IANA zone ("posixrules", "right/UTC") get stored."""
    await replay(world, Command(ME, "start"), PressForged(ME, 0, f"tz:{zone}"))


async def test_found_delete_confirmation_with_a_superscript_timestamp(world: World) -> None:
    await replay(world, Command(ME, "delete"), PressForged(ME, 0, "del:yes:²"))


async def test_found_forged_press_on_a_document(world: World) -> None:
    """Buttons that edit text fail on a message without text (the /export document)."""
    await replay(world, Command(ME, "start"), Command(ME, "export"), PressForged(ME, 0, "topics"))


async def test_found_press_on_another_users_message(world: World) -> None:
    """Whoever presses becomes a user whose chat is the chat of the pressed message."""
    await replay(world, Command(ME, "tip"), PressOther(YOU, ME, 0, 2))  # "Another tip"


async def test_found_press_in_a_group(world: World) -> None:
    """A forged press on the bot's group message sends a tip into the group and makes the
    group the presser's chat for daily tips."""
    await replay(
        world, Group(YOU, GROUP, "/start", command=True), PressInGroup(YOU, GROUP, 0, "tip:any")
    )


async def test_found_quick_checkin_with_a_huge_number(world: World) -> None:
    """int() refuses more than 4300 digits with a plain ValueError, which /checkin does not
    catch (only a message longer than Telegram's 4096 characters can carry it)."""
    await replay(world, Command(ME, "checkin", "pain=" + "9" * 4301))


async def test_found_long_language_code(world: World) -> None:
    """users.language_code is String(16): a longer (valid BCP 47) code fails every handler on
    PostgreSQL ("value too long for type character varying(16)"); SQLite stores it."""
    await replay(world, Rename(ME, "Alex", LONG_LANGUAGE), Command(ME, "start"))
