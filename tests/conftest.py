"""Shared fixtures: content, a database per test (SQLite, and PostgreSQL when asked), the fake
Bot API, and the real Application wired to it."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from bot.app import BotApplication, build_application
from bot.config import Settings
from bot.content import Content, load_content
from bot.runtime import Runtime, get_runtime
from tests.fakes.telegram_api import TEST_TOKEN, FakeBotAPI, FakeBotAPIServer, FakeRequest
from tests.harness import ChatDriver

CONTENT_DIR = Path(__file__).resolve().parent.parent / "content"
POSTGRES_URL = os.environ.get("TEST_POSTGRES_URL", "")
BACKENDS = ["sqlite", "postgres"] if POSTGRES_URL else ["sqlite"]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked `postgres` need TEST_POSTGRES_URL; without it they are deselected."""
    if POSTGRES_URL:
        return
    deselected = [item for item in items if item.get_closest_marker("postgres")]
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = [item for item in items if not item.get_closest_marker("postgres")]


@pytest.fixture(scope="session")
def content() -> Content:
    return load_content(CONTENT_DIR)


async def reset_postgres(url: str) -> None:
    """Drop everything in the test database's public schema."""
    engine = create_async_engine(url)
    async with engine.begin() as connection:
        await connection.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
        await connection.execute(text("CREATE SCHEMA public"))
    await engine.dispose()


@pytest.fixture(params=BACKENDS)
async def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, empty database: SQLite always, PostgreSQL too when TEST_POSTGRES_URL is set."""
    if request.param == "postgres":
        await reset_postgres(POSTGRES_URL)
        return POSTGRES_URL
    return f"sqlite+aiosqlite:///{tmp_path / 'backcalm.db'}"


@pytest.fixture
def make_settings(database_url: str, tmp_path: Path):  # type: ignore[no-untyped-def]
    def factory(**overrides: object) -> Settings:
        values: dict[str, object] = {
            "telegram_bot_token": TEST_TOKEN,
            "database_url": database_url,
            "content_dir": CONTENT_DIR,
            "data_key_file": tmp_path / "backcalm.key",
            # No rate limiter: the fake does not enforce Telegram's limits here and these tests
            # type far faster than a person (tests/delivery/test_ratelimit.py tests the limiter).
            "telegram_global_rate": 0,
        }
        values.update(overrides)
        return Settings(_env_file=None, **values)  # type: ignore[call-arg, arg-type]

    return factory


@pytest.fixture
def settings(make_settings) -> Settings:  # type: ignore[no-untyped-def]
    return make_settings()  # type: ignore[no-any-return]


@pytest.fixture
def fake_api() -> FakeBotAPI:
    return FakeBotAPI(TEST_TOKEN)


@pytest.fixture
async def app(
    settings: Settings, content: Content, fake_api: FakeBotAPI
) -> AsyncIterator[BotApplication]:
    """The real Application talking to the fake Bot API in-process, resources started."""
    application = build_application(
        settings, content, request=FakeRequest(fake_api), get_updates_request=FakeRequest(fake_api)
    )
    await application.initialize()
    assert application.post_init is not None
    await application.post_init(application)
    try:
        yield application
    finally:
        assert application.post_shutdown is not None
        await application.post_shutdown(application)
        await application.shutdown()


@pytest.fixture
def runtime(app: BotApplication) -> Runtime:
    return get_runtime(app)


@pytest.fixture
def chat(app: BotApplication, fake_api: FakeBotAPI) -> ChatDriver:
    """A private chat with the user Alex (id 1001), driven through process_update."""
    return ChatDriver(app, fake_api, user_id=1001, first_name="Alex")


@pytest.fixture
async def api_server(fake_api: FakeBotAPI) -> AsyncIterator[FakeBotAPIServer]:
    server = FakeBotAPIServer(fake_api)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()
