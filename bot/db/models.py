"""The schema: users, schedules, deliveries, check-ins and tip feedback."""

from __future__ import annotations

import enum
from datetime import UTC, date, datetime, time
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    Enum,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    SmallInteger,
    String,
    Time,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from bot.db.types import UTCDateTime

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    """The current time, timezone-aware in UTC."""
    return datetime.now(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map: ClassVar[dict[Any, Any]] = {datetime: UTCDateTime()}


class ScheduleKind(enum.StrEnum):
    DAILY_TIP = "daily_tip"
    CHECKIN_REMINDER = "checkin_reminder"
    WEEKLY_SUMMARY = "weekly_summary"


class DeliveryStatus(enum.StrEnum):
    CLAIMED = "claimed"
    SENT = "sent"
    BLOCKED = "blocked"
    FAILED = "failed"
    UNKNOWN = "unknown"
    SKIPPED = "skipped"


class Feedback(enum.StrEnum):
    HELPFUL = "helpful"
    NOT_FOR_ME = "not_for_me"


def _enum(cls: type[enum.StrEnum]) -> Enum:
    return Enum(
        cls,
        native_enum=False,
        length=24,
        values_callable=lambda members: [m.value for m in members],
        validate_strings=True,
    )


class User(Base):
    """A person who has talked to the bot; the id is their Telegram user id."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    chat_id: Mapped[int] = mapped_column(BigInteger)
    language_code: Mapped[str | None] = mapped_column(String(16))
    timezone: Mapped[str | None] = mapped_column(String(64))
    country: Mapped[str | None] = mapped_column(String(2))
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    blocked_at: Mapped[datetime | None]
    focus_topics: Mapped[list[str]] = mapped_column(JSON, default=list)
    checkin_consent_at: Mapped[datetime | None]
    weekly_summary: Mapped[bool | None] = mapped_column(Boolean)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class Schedule(Base):
    """One recurring thing for one user, e.g. the daily tip at 08:00 Europe/Berlin."""

    __tablename__ = "schedules"
    __table_args__ = (
        UniqueConstraint("user_id", "kind"),
        Index("ix_schedules_due", "active", "next_run_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("users.id", ondelete="CASCADE"))
    kind: Mapped[ScheduleKind] = mapped_column(_enum(ScheduleKind))
    local_time: Mapped[time] = mapped_column(Time)
    timezone: Mapped[str] = mapped_column(String(64))
    weekday: Mapped[int | None] = mapped_column(SmallInteger)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    paused_until: Mapped[datetime | None]
    next_run_at: Mapped[datetime | None]
    # How often a reminder was snoozed since its last scheduled occurrence.
    snoozes: Mapped[int] = mapped_column(SmallInteger, default=0, server_default="0")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class Delivery(Base):
    """One claimed occurrence of a schedule; unique per user, kind and local date."""

    __tablename__ = "deliveries"
    __table_args__ = (
        UniqueConstraint("user_id", "kind", "local_date", "sequence"),
        Index("ix_deliveries_status_claimed", "status", "claimed_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("users.id", ondelete="CASCADE"))
    kind: Mapped[ScheduleKind] = mapped_column(_enum(ScheduleKind))
    local_date: Mapped[date] = mapped_column(Date)
    # 0 for the scheduled occurrence; 1, 2, … for snoozed repeats of a reminder that day.
    sequence: Mapped[int] = mapped_column(SmallInteger, default=0, server_default="0")
    due_at: Mapped[datetime]
    claimed_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None]
    status: Mapped[DeliveryStatus] = mapped_column(
        _enum(DeliveryStatus), default=DeliveryStatus.CLAIMED
    )
    tip_id: Mapped[str | None] = mapped_column(String(64))
    telegram_message_id: Mapped[int | None] = mapped_column(BigInteger)
    error: Mapped[str | None] = mapped_column(String(200))


class TipView(Base):
    """A tip shown to a user (daily, on request or in a topic), for rotation."""

    __tablename__ = "tip_views"
    __table_args__ = (Index("ix_tip_views_user_shown", "user_id", "shown_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("users.id", ondelete="CASCADE"))
    tip_id: Mapped[str] = mapped_column(String(64))
    topic_id: Mapped[str] = mapped_column(String(32))
    shown_at: Mapped[datetime] = mapped_column(default=utcnow)


class TipFeedback(Base):
    """What a user thought of a tip; the latest answer wins."""

    __tablename__ = "tip_feedback"
    __table_args__ = (UniqueConstraint("user_id", "tip_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("users.id", ondelete="CASCADE"))
    tip_id: Mapped[str] = mapped_column(String(64))
    topic_id: Mapped[str] = mapped_column(String(32))
    verdict: Mapped[Feedback] = mapped_column(_enum(Feedback))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class CheckIn(Base):
    """A brief self-report, encrypted: pain and stress 0-10, mood and sleep 1-5, a note.

    `payload` is the JSON of the scores and note, encrypted with AES-GCM (bot/crypto.py);
    `key_id` names the key it was encrypted with, so key rotation can find old rows.
    """

    __tablename__ = "checkins"
    __table_args__ = (Index("ix_checkins_user_created", "user_id", "created_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("users.id", ondelete="CASCADE"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    local_date: Mapped[date] = mapped_column(Date)
    key_id: Mapped[bytes] = mapped_column(LargeBinary(4), index=True)
    payload: Mapped[bytes] = mapped_column(LargeBinary)


class CheckInDraft(Base):
    """A guided check-in in progress (one per user), so it survives a restart."""

    __tablename__ = "checkin_drafts"

    user_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    chat_id: Mapped[int] = mapped_column(BigInteger)
    message_id: Mapped[int | None] = mapped_column(BigInteger)
    step: Mapped[str] = mapped_column(String(16))
    key_id: Mapped[bytes] = mapped_column(LargeBinary(4))
    payload: Mapped[bytes] = mapped_column(LargeBinary)
    expires_at: Mapped[datetime]


class Worker(Base):
    """A running bot process and its latest delivery tick, for `python -m bot status`."""

    __tablename__ = "workers"

    name: Mapped[str] = mapped_column(String(120), primary_key=True)
    role: Mapped[str] = mapped_column(String(16))
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_tick_at: Mapped[datetime | None]
