"""Drives the real Application with updates from the fake Bot API, one update at a time."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from telegram import Update

from bot.app import BotApplication
from bot.db import migrate
from bot.db.engine import create_engine, create_sessionmaker, unit_of_work
from bot.db.models import Schedule, ScheduleKind, User, utcnow
from tests.fakes.telegram_api import FakeBotAPI, FakeMessage


class ChatDriver:
    """One user in a private chat: send text, commands and button presses, read the replies."""

    def __init__(
        self,
        app: BotApplication,
        api: FakeBotAPI,
        *,
        user_id: int,
        first_name: str = "Alex",
        language_code: str = "en",
    ) -> None:
        self.app = app
        self.api = api
        self.user_id = user_id
        self.first_name = first_name
        self.language_code = language_code

    async def feed(self, update: dict[str, Any]) -> list[FakeMessage]:
        """Process one raw update; return the bot messages it created in this chat."""
        before = len(self.api.sent_messages(self.user_id))
        await self.app.process_update(Update.de_json(update, self.app.bot))
        return self.api.sent_messages(self.user_id)[before:]

    async def command(self, command: str, args: str = "") -> list[FakeMessage]:
        return await self.feed(
            self.api.send_command(
                self.user_id,
                command,
                args,
                first_name=self.first_name,
                language_code=self.language_code,
            )
        )

    async def send(self, text: str) -> list[FakeMessage]:
        return await self.feed(
            self.api.send_text(
                self.user_id, text, first_name=self.first_name, language_code=self.language_code
            )
        )

    async def press(self, button_text: str, message_id: int | None = None) -> list[FakeMessage]:
        return await self.feed(self.api.press(self.user_id, button_text, message_id))

    def last(self) -> FakeMessage:
        return self.api.last_bot_message(self.user_id)


async def due_users(url: str, users: range, *, seconds_ago: int = 30) -> None:
    """Subscribers whose daily tip was due `seconds_ago` seconds ago (UTC zone)."""
    engine = create_engine(url)
    await migrate.upgrade(engine)
    now = utcnow()
    async with unit_of_work(create_sessionmaker(engine)) as session:
        session.add_all(User(id=u, chat_id=u, timezone="UTC", focus_topics=[]) for u in users)
        await session.flush()
        session.add_all(
            Schedule(
                user_id=u,
                kind=ScheduleKind.DAILY_TIP,
                local_time=(now - timedelta(minutes=1)).time().replace(second=0, microsecond=0),
                timezone="UTC",
                next_run_at=now - timedelta(seconds=seconds_ago),
            )
            for u in users
        )
    await engine.dispose()
