"""Check-ins: parsing, validating, storing (encrypted), and what the numbers say.

Scores: pain and stress 0-10, mood and sleep 1-5, and an optional note. Everything a person
reports is stored encrypted (see bot/crypto.py); the database sees only the user, the time,
the local date and ciphertext.
"""

from __future__ import annotations

import re
import statistics
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from datetime import date, datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import delete, func, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.charts import DayPoint
from bot.db.models import CheckIn, CheckInDraft, User
from bot.services.schedules import zone
from bot.services.subscriptions import start_weekly_summary

FIELDS = ("pain", "stress", "mood", "sleep")
RANGES: dict[str, tuple[int, int]] = {
    "pain": (0, 10),
    "stress": (0, 10),
    "mood": (1, 5),
    "sleep": (1, 5),
}
ALIASES = {"p": "pain", "s": "stress", "m": "mood", "sl": "sleep", "mood": "mood"}
NOTE_LIMIT = 500
DRAFT_LIFETIME = timedelta(minutes=30)
STEPS = ("pain", "stress", "mood", "sleep", "note")
WEEKLY_SUMMARY_AFTER = 3
RELATION_MIN_DAYS = 10
LOW_MOOD = 2
LOW_MOOD_STREAK = 3
HIGH_PAIN = 7
HIGH_STRESS = 7
POOR_SLEEP = 2
REDFLAG_PAIN = 9


class Cipher(Protocol):
    """What this module needs from the keyring."""

    def encrypt_json(self, obj: Any, *, aad: bytes) -> bytes: ...

    def decrypt_json(self, token: bytes, *, aad: bytes) -> Any: ...

    def key_id(self, token: bytes) -> bytes: ...


def aad_for(user_id: int, kind: str = "checkin") -> bytes:
    """Associated data that ties a ciphertext to its owner and purpose."""
    return f"{kind}:{user_id}".encode()


@dataclass(frozen=True, slots=True)
class Scores:
    """What one check-in reports; any field may be missing."""

    pain: int | None = None
    stress: int | None = None
    mood: int | None = None
    sleep: int | None = None
    note: str | None = None

    @property
    def empty(self) -> bool:
        return all(getattr(self, f) is None for f in FIELDS)


@dataclass(frozen=True, slots=True)
class Entry:
    """A stored check-in, decrypted."""

    created_at: datetime
    local_date: date
    scores: Scores


class QuickFormError(ValueError):
    """The quick form could not be read; `reason` is a short key, `field` what it was about."""

    def __init__(self, reason: str, field: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.field = field


_PAIR = re.compile(r"^([a-z]+)\s*[=:]\s*(-?[0-9]{1,3})$")
_NUMBER = re.compile(r"^-?[0-9]{1,3}$")
_KEYISH = re.compile(r"^(pain|stress|mood|sleep|p|s|m|sl)\s*[=:]")


def _check(field: str, value: int) -> int:
    low, high = RANGES[field]
    if not low <= value <= high:
        raise QuickFormError("range", field)
    return value


def parse_quick(text: str) -> Scores:
    """Read `6 4` (pain, stress[, mood, sleep]) or `pain=6 stress=4 …`; the rest is a note."""
    tokens = text.split()
    values: dict[str, int] = {}
    named = False
    index = 0
    while index < len(tokens):
        token = tokens[index].lower()
        pair = _PAIR.match(token)
        if pair:
            field = ALIASES.get(pair.group(1), pair.group(1))
            if field not in RANGES:
                raise QuickFormError("field", pair.group(1))
            values[field] = _check(field, int(pair.group(2)))
            named = True
        elif _NUMBER.match(token) and not named and index < len(FIELDS):
            values[FIELDS[index]] = _check(FIELDS[index], int(token))
        else:
            break
        index += 1
    rest = tokens[index:]
    if rest and _KEYISH.match(rest[0].lower()):
        raise QuickFormError("unreadable", rest[0].split("=")[0].split(":")[0])
    note = " ".join(rest) or None
    if not values:
        raise QuickFormError("empty")
    if note is not None and len(note) > NOTE_LIMIT:
        raise QuickFormError("note_length")
    return Scores(**values, note=note)


def _to_json(scores: Scores) -> dict[str, Any]:
    return {k: v for k, v in asdict(scores).items() if v is not None}


def _from_json(data: Any) -> Scores:
    if not isinstance(data, dict):
        return Scores()
    return Scores(**{k: data.get(k) for k in (*FIELDS, "note")})


def local_date_for(moment: datetime, timezone: str | None) -> date:
    return moment.astimezone(zone(timezone or "UTC")).date()


# ---------------------------------------------------------------- storing


async def save(
    session: AsyncSession, cipher: Cipher, user_id: int, scores: Scores, now: datetime
) -> Entry:
    """Store one check-in encrypted; start the weekly summary after the third."""
    [result] = await save_many(session, cipher, [(user_id, scores, now)])
    if isinstance(result, Exception):
        raise result
    return result


async def save_many(
    session: AsyncSession, cipher: Cipher, items: Sequence[tuple[int, Scores, datetime]]
) -> list[Entry | PermissionError]:
    """Store many check-ins in one go (one read of the users, one insert); an item whose
    user has not consented gets a PermissionError in its place and stores nothing."""
    ids = {user_id for user_id, _, _ in items}
    users = {
        row.id: row
        for row in await session.execute(
            select(User.id, User.timezone, User.checkin_consent_at, User.weekly_summary).where(
                User.id.in_(ids)
            )
        )
    }
    results: list[Entry | PermissionError] = []
    rows: list[dict[str, Any]] = []
    for user_id, scores, now in items:
        user = users.get(user_id)
        if user is None or user.checkin_consent_at is None:
            results.append(PermissionError("no consent to store check-ins"))
            continue
        local = local_date_for(now, user.timezone)
        token = cipher.encrypt_json(_to_json(scores), aad=aad_for(user_id))
        rows.append(
            {
                "user_id": user_id,
                "created_at": now,
                "local_date": local,
                "key_id": cipher.key_id(token),
                "payload": token,
            }
        )
        results.append(Entry(now, local, scores))
    if rows:
        await session.execute(insert(CheckIn), rows)
    latest = {user_id: now for user_id, _, now in items}
    for user_id, now in latest.items():
        user = users.get(user_id)
        if user is not None and user.checkin_consent_at is not None and user.weekly_summary is None:
            await _maybe_start_weekly_summary(session, user_id, now)
    return results


async def _maybe_start_weekly_summary(session: AsyncSession, user_id: int, now: datetime) -> None:
    """Weekly summaries start by themselves after the third check-in, unless turned off."""
    count = await session.scalar(select(func.count()).where(CheckIn.user_id == user_id))
    if (count or 0) >= WEEKLY_SUMMARY_AFTER:
        await start_weekly_summary(session, user_id, now)


async def entries_since(
    session: AsyncSession, cipher: Cipher, user_id: int, since: date
) -> list[Entry]:
    """The user's check-ins from local date `since` on, oldest first."""
    rows = await session.execute(
        select(CheckIn.created_at, CheckIn.local_date, CheckIn.payload)
        .where(CheckIn.user_id == user_id, CheckIn.local_date >= since)
        .order_by(CheckIn.created_at, CheckIn.id)
    )
    aad = aad_for(user_id)
    return [Entry(c, d, _from_json(cipher.decrypt_json(p, aad=aad))) for c, d, p in rows]


async def last_entries(
    session: AsyncSession, cipher: Cipher, user_id: int, count: int
) -> list[Entry]:
    """The user's latest `count` check-ins, oldest first."""
    rows = await session.execute(
        select(CheckIn.created_at, CheckIn.local_date, CheckIn.payload)
        .where(CheckIn.user_id == user_id)
        .order_by(CheckIn.created_at.desc(), CheckIn.id.desc())
        .limit(count)
    )
    aad = aad_for(user_id)
    return [Entry(c, d, _from_json(cipher.decrypt_json(p, aad=aad))) for c, d, p in rows][::-1]


async def key_ids_in_use(session: AsyncSession) -> set[bytes]:
    """Every key id that encrypted something still stored (check-ins and drafts)."""
    used = set(await session.scalars(select(CheckIn.key_id).distinct()))
    used |= set(await session.scalars(select(CheckInDraft.key_id).distinct()))
    return used


# ---------------------------------------------------------------- drafts (guided check-in)


@dataclass(frozen=True, slots=True)
class Draft:
    """A guided check-in in progress."""

    user_id: int
    chat_id: int
    message_id: int | None
    step: str
    scores: Scores
    expires_at: datetime


async def start_draft(
    session: AsyncSession, cipher: Cipher, user_id: int, chat_id: int, now: datetime
) -> Draft:
    """Begin (or restart) a guided check-in at its first step."""
    await session.execute(delete(CheckInDraft).where(CheckInDraft.user_id == user_id))
    draft = Draft(user_id, chat_id, None, STEPS[0], Scores(), now + DRAFT_LIFETIME)
    await _store_draft(session, cipher, draft)
    return draft


async def _store_draft(session: AsyncSession, cipher: Cipher, draft: Draft) -> None:
    token = cipher.encrypt_json(_to_json(draft.scores), aad=aad_for(draft.user_id, "draft"))
    row = await session.get(CheckInDraft, draft.user_id)
    if row is None:
        row = CheckInDraft(user_id=draft.user_id)
        session.add(row)
    row.chat_id = draft.chat_id
    row.message_id = draft.message_id
    row.step = draft.step
    row.key_id = cipher.key_id(token)
    row.payload = token
    row.expires_at = draft.expires_at
    await session.flush()


async def get_draft(
    session: AsyncSession, cipher: Cipher, user_id: int, now: datetime
) -> Draft | None:
    """The user's unexpired draft, if any; an expired one is removed."""
    row = await session.get(CheckInDraft, user_id)
    if row is None:
        return None
    if row.expires_at <= now:
        await session.delete(row)
        await session.flush()
        return None
    scores = _from_json(cipher.decrypt_json(row.payload, aad=aad_for(user_id, "draft")))
    return Draft(user_id, row.chat_id, row.message_id, row.step, scores, row.expires_at)


async def put_draft(session: AsyncSession, cipher: Cipher, draft: Draft) -> None:
    await _store_draft(session, cipher, draft)


async def drop_draft(session: AsyncSession, user_id: int) -> None:
    await session.execute(delete(CheckInDraft).where(CheckInDraft.user_id == user_id))


def _with(scores: Scores, field: str, value: int | None) -> Scores:
    changes: dict[str, Any] = {field: value}
    return replace(scores, **changes)


def answer(draft: Draft, value: int, now: datetime) -> Draft:
    """Record the answer to the current step and move to the next."""
    field = draft.step
    if field not in RANGES:
        raise ValueError("this step takes no number")
    _check(field, value)
    scores = _with(draft.scores, field, value)
    next_step = STEPS[STEPS.index(field) + 1]
    return replace(draft, scores=scores, step=next_step, expires_at=now + DRAFT_LIFETIME)


def back(draft: Draft, now: datetime) -> Draft:
    """One step back (clearing that answer); the first step stays the first."""
    index = max(STEPS.index(draft.step) - 1, 0)
    step = STEPS[index]
    scores = _with(draft.scores, step, None) if step in RANGES else draft.scores
    return replace(draft, scores=scores, step=step, expires_at=now + DRAFT_LIFETIME)


# ---------------------------------------------------------------- what the numbers say


def daily_points(entries: Sequence[Entry]) -> list[DayPoint]:
    """Means per local date (several check-ins a day are fine), oldest first."""
    by_day: dict[date, dict[str, list[int]]] = defaultdict(lambda: defaultdict(list))
    for entry in entries:
        for field in FIELDS:
            value = getattr(entry.scores, field)
            if value is not None:
                by_day[entry.local_date][field].append(value)
        by_day[entry.local_date]  # a day with only a note still counts as a day
    points = []
    for day in sorted(by_day):
        values = by_day[day]
        means = {f: (statistics.fmean(values[f]) if values[f] else None) for f in FIELDS}
        points.append(DayPoint(day=day, **means))
    return points


@dataclass(frozen=True, slots=True)
class Relation:
    """Pain on the higher-stress days versus the calmer days."""

    higher_stress_pain: float
    calmer_pain: float
    days: int


def stress_pain_relation(points: Sequence[DayPoint]) -> Relation | None:
    """With enough days that have both, split them at the median stress."""
    both = [(p.stress, p.pain) for p in points if p.stress is not None and p.pain is not None]
    if len(both) < RELATION_MIN_DAYS:
        return None
    middle = statistics.median(s for s, _ in both)
    higher = [pain for stress, pain in both if stress > middle]
    calmer = [pain for stress, pain in both if stress <= middle]
    if not higher or not calmer:
        return None
    return Relation(statistics.fmean(higher), statistics.fmean(calmer), len(both))


def days_with_both(points: Sequence[DayPoint]) -> int:
    return sum(1 for p in points if p.stress is not None and p.pain is not None)


def averages(points: Sequence[DayPoint]) -> dict[str, float | None]:
    """The mean of the daily means per field."""
    result: dict[str, float | None] = {}
    for field in FIELDS:
        values = [getattr(p, field) for p in points if getattr(p, field) is not None]
        result[field] = statistics.fmean(values) if values else None
    return result


def low_mood_streak(entries: Sequence[Entry]) -> bool:
    """Mood 1-2 in each of the last three check-ins that reported a mood."""
    moods = [e.scores.mood for e in entries if e.scores.mood is not None][-LOW_MOOD_STREAK:]
    return len(moods) == LOW_MOOD_STREAK and all(m <= LOW_MOOD for m in moods)


def matched_topic(scores: Scores, rng_value: int = 0) -> str | None:
    """The topic whose tip fits these answers best: flare, stress/breathing, sleep, or any."""
    if scores.pain is not None and scores.pain >= HIGH_PAIN:
        return "flare"
    if scores.stress is not None and scores.stress >= HIGH_STRESS:
        return ("stress", "breathing")[rng_value % 2]
    if scores.sleep is not None and scores.sleep <= POOR_SLEEP:
        return "sleep"
    return None
