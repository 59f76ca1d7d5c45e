"""The long-lived resources one running bot shares, reached through bot_data."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from bot.clock import Clock
from bot.config import Settings
from bot.content import Content
from bot.crypto import KeyringHolder
from bot.services.checkin_writer import CheckinWriter
from bot.services.zones import ZoneDirectory

if TYPE_CHECKING:
    from telegram.ext import Application

    from bot.delivery.engine import DeliveryEngine

RUNTIME_KEY = "runtime"


@dataclass
class Runtime:
    """Settings, content and the database, created in post_init and closed in post_shutdown."""

    settings: Settings
    content: Content
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    delivery: DeliveryEngine
    zones: ZoneDirectory
    clock: Clock
    keys: KeyringHolder
    checkin_writer: CheckinWriter
    errors: deque[tuple[datetime, str]] = field(default_factory=lambda: deque(maxlen=10))


def get_runtime(application: Application[Any, Any, Any, Any, Any, Any]) -> Runtime:
    """The runtime of a started application."""
    runtime = application.bot_data.get(RUNTIME_KEY)
    if not isinstance(runtime, Runtime):
        raise RuntimeError("the application was not started through post_init")
    return runtime
