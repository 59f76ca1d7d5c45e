"""Inline keyboards and the callback_data codec.

callback_data is `action` or `action:arg[:arg…]`, at most 64 bytes as Telegram requires.
Anything that does not decode into a known action with the right number of arguments is
treated as a stale button and answered as such, never as an error.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from telegram import InlineKeyboardButton, InlineKeyboardMarkup

CALLBACK_LIMIT = 64
SEPARATOR = ":"

# action → how many arguments it takes.
ACTIONS: dict[str, int] = {
    "fb": 2,  # tip feedback: verdict (h|n), tip id
    "tip": 1,  # another tip: topic id or "any"
    "tz": 1,  # choose a time zone: IANA key
    "tm": 1,  # choose a tip time: HHMM
    "set": 1,  # settings: what to change
    "focus": 1,  # toggle a focus topic in settings
    "topic": 1,  # open a topic in place (again: another tip from it)
    "topics": 0,  # back to the topic menu
    "tfocus": 1,  # add or remove a topic from the daily focus
    "sub": 0,  # subscribe now
    "priv": 1,  # privacy choices: revoke consent, delete check-ins, keep them
    "del": 2,  # /delete: yes|no, the time the question was asked (it expires)
    "rem": 1,  # check-in reminder: snooze minutes, or "skip"
    "ck": 2,  # check-in: (consent, yes|no), (<step>, value), (nav, back|skip|cancel|start)
}


@dataclass(frozen=True, slots=True)
class Callback:
    """A decoded button press."""

    action: str
    args: tuple[str, ...]


def encode(action: str, *args: str) -> str:
    """callback_data for `action` with `args`; raises if it would break Telegram's limit."""
    if ACTIONS.get(action) != len(args):
        raise ValueError(f"{action} takes {ACTIONS.get(action)} arguments, got {len(args)}")
    if any(SEPARATOR in arg or not arg for arg in args):
        raise ValueError("callback arguments must be non-empty and free of ':'")
    data = SEPARATOR.join((action, *args))
    if len(data.encode()) > CALLBACK_LIMIT:
        raise ValueError(f"callback_data over {CALLBACK_LIMIT} bytes: {data!r}")
    return data


def decode(data: str | None) -> Callback | None:
    """The button press, or None when the data is unknown, malformed or from an old version."""
    if not data or len(data.encode()) > CALLBACK_LIMIT:
        return None
    action, *args = data.split(SEPARATOR)
    if ACTIONS.get(action) != len(args) or any(not arg for arg in args):
        return None
    return Callback(action, tuple(args))


def button(label: str, action: str, *args: str) -> InlineKeyboardButton:
    return InlineKeyboardButton(label, callback_data=encode(action, *args))


def keyboard(rows: Sequence[Sequence[InlineKeyboardButton]]) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup([list(row) for row in rows if row])
