"""End-to-end fixtures: the real bot polls the fake Bot API over HTTP on 127.0.0.1."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from bot.app import BotApplication, build_application
from bot.config import Settings
from bot.content import Content
from tests.fakes.telegram_api import FakeBotAPIServer


@pytest.fixture
async def polling_bot(
    make_settings,
    content: Content,
    api_server: FakeBotAPIServer,  # type: ignore[no-untyped-def]
) -> AsyncIterator[BotApplication]:
    """The real Application, started and polling the fake server like it polls Telegram."""
    settings: Settings = make_settings(
        telegram_api_base_url=api_server.base_url,
        delivery_tick_seconds=0.2,
        flood_max_updates=1000,  # these tests type faster than any person
    )
    application = build_application(settings, content)
    await application.initialize()
    assert application.post_init is not None
    await application.post_init(application)
    assert application.updater is not None
    await application.updater.start_polling(poll_interval=0.0, timeout=1)
    await application.start()
    try:
        yield application
    finally:
        await application.updater.stop()
        await application.stop()
        assert application.post_shutdown is not None
        await application.post_shutdown(application)
        await application.shutdown()
