"""Webhook mode: the fake Bot API pushes updates like Telegram, and the real bot takes them.

The first tests check the fake's pushing against a tiny stand-in endpoint and against
python-telegram-bot's own webhook server; the last one runs `python -m bot` as an operator would
with WEBHOOK_URL set.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import signal
import socket
import sys
from collections import deque
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from telegram import Bot, Update
from telegram.error import BadRequest, Conflict
from telegram.ext import Application, CommandHandler, ContextTypes
from telegram.request import HTTPXRequest

from bot.content import visible_text
from tests.fakes.telegram_api import (
    SECRET_TOKEN_HEADER,
    TEST_TOKEN,
    FakeBotAPI,
    FakeBotAPIServer,
    WebhookDelivery,
)

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parent.parent.parent
USER = 501
STRANGER = 777  # the wrong-secret requests claim to come from here


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Endpoint:
    """A stand-in for the bot's webhook server: records requests, answers scripted statuses."""

    def __init__(self) -> None:
        self.requests: list[tuple[dict[str, str], dict[str, Any]]] = []
        self.statuses: deque[int] = deque()  # answered in turn, then 200
        self._runner: web.AppRunner | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    async def start(self, port: int = 0) -> None:
        app = web.Application()
        app.router.add_post("/hook", self._receive)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", port)
        await site.start()
        self.port = int(self._runner.addresses[0][1])

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _receive(self, request: web.Request) -> web.Response:
        self.requests.append((dict(request.headers), await request.json()))
        return web.Response(status=self.statuses.popleft() if self.statuses else 200)

    def update_ids(self) -> list[int]:
        return [body["update_id"] for _, body in self.requests]


def delivered(api: FakeBotAPI) -> list[WebhookDelivery]:
    return [attempt for attempt in api.webhook_deliveries if attempt.ok]


@pytest.fixture
def api() -> FakeBotAPI:
    return FakeBotAPI(TEST_TOKEN, webhook_retry_delay=0.02, webhook_max_retry_delay=0.2)


@pytest.fixture
async def server(api: FakeBotAPI) -> AsyncIterator[FakeBotAPIServer]:
    async with FakeBotAPIServer(api) as running:
        yield running


@pytest.fixture
async def bot(server: FakeBotAPIServer) -> AsyncIterator[Bot]:
    """A PTB Bot talking to the fake over HTTP: it plays whoever calls setWebhook."""
    async with Bot(
        TEST_TOKEN, base_url=server.base_url, request=HTTPXRequest(read_timeout=5.0)
    ) as running:
        yield running


@pytest.fixture
async def endpoint() -> AsyncIterator[Endpoint]:
    receiver = Endpoint()
    await receiver.start()
    try:
        yield receiver
    finally:
        await receiver.stop()


# ------------------------------------------------------------------------------ the fake pushes


async def test_updates_are_pushed_in_order_with_the_secret(
    api: FakeBotAPI, bot: Bot, endpoint: Endpoint
) -> None:
    first = api.send_text(USER, "queued before the webhook")
    assert await bot.set_webhook(endpoint.url, secret_token="s3cret_-X")
    second = api.send_command(USER, "help")
    api.block(USER)
    await api.wait_for(lambda: len(delivered(api)) == 3)

    assert endpoint.update_ids() == [
        first["update_id"],
        second["update_id"],
        first["update_id"] + 2,
    ]
    assert endpoint.requests[0][1] == first
    assert "my_chat_member" in endpoint.requests[2][1]
    for headers, _ in endpoint.requests:
        assert headers[SECRET_TOKEN_HEADER] == "s3cret_-X"
        assert headers["Content-Type"] == "application/json"
    assert [d.url for d in api.webhook_deliveries] == [endpoint.url] * 3
    assert [d.status for d in api.webhook_deliveries] == [200] * 3
    assert api.pending_updates() == []
    assert api.webhook_secret == "s3cret_-X"
    info = await bot.get_webhook_info()
    assert (info.url, info.pending_update_count, info.last_error_message) == (endpoint.url, 0, None)
    with pytest.raises(Conflict, match="webhook is active"):
        await bot.get_updates()


async def test_no_secret_header_when_no_secret_was_set(
    api: FakeBotAPI, bot: Bot, endpoint: Endpoint
) -> None:
    assert await bot.set_webhook(endpoint.url)
    api.send_text(USER, "hello")
    await api.wait_for(lambda: len(delivered(api)) == 1)
    headers, body = endpoint.requests[0]
    assert SECRET_TOKEN_HEADER not in headers
    assert body["message"]["text"] == "hello"


async def test_a_refused_push_is_retried_and_the_update_stays_queued(
    bot: Bot, endpoint: Endpoint
) -> None:
    api = FakeBotAPI(TEST_TOKEN, webhook_retry_delay=0.3, webhook_max_retry_delay=0.3)
    async with FakeBotAPIServer(api) as server, Bot(TEST_TOKEN, base_url=server.base_url) as own:
        endpoint.statuses.extend([500, 403])
        assert await own.set_webhook(endpoint.url, secret_token="abc")
        first = api.send_text(USER, "one")
        second = api.send_text(USER, "two")
        await api.wait_for(lambda: len(api.webhook_deliveries) == 1)
        assert api.pending_updates() == [first, second]  # not delivered, still queued
        info = await own.get_webhook_info()
        assert info.pending_update_count == 2
        assert (
            info.last_error_message == "Wrong response from the webhook: 500 Internal Server Error"
        )
        assert info.last_error_date is not None

        await api.wait_for(lambda: len(delivered(api)) == 2, timeout=5)
        ids = [first["update_id"]] * 3 + [second["update_id"]]
        assert [(d.update_id, d.status) for d in api.webhook_deliveries] == list(
            zip(ids, [500, 403, 200, 200], strict=True)
        )
        assert endpoint.update_ids() == ids  # in order: "two" waited for "one"
        assert api.pending_updates() == []


async def test_connection_errors_are_retried_until_the_bot_listens(
    api: FakeBotAPI, bot: Bot
) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}/hook"
    assert await bot.set_webhook(url)
    update = api.send_text(USER, "anyone there?")
    await api.wait_for(lambda: len(api.webhook_deliveries) >= 2)
    failed = api.webhook_deliveries[0]
    assert (failed.url, failed.update_id, failed.status) == (url, update["update_id"], None)
    assert failed.error == "Connection refused"
    info = await bot.get_webhook_info()
    assert (info.pending_update_count, info.last_error_message) == (1, "Connection refused")

    late = Endpoint()
    await late.start(port)
    try:
        await api.wait_for(lambda: len(delivered(api)) == 1, timeout=5)
        assert late.update_ids() == [update["update_id"]]
        assert api.pending_updates() == []
    finally:
        await late.stop()


async def test_delete_webhook_stops_pushing_and_polling_gets_the_rest(
    api: FakeBotAPI, bot: Bot
) -> None:
    assert await bot.set_webhook(f"http://127.0.0.1:{free_port()}/hook")
    api.send_text(USER, "stuck")
    await api.wait_for(lambda: len(api.webhook_deliveries) >= 1)
    assert await bot.delete_webhook()
    attempts = len(api.webhook_deliveries)
    await asyncio.sleep(0.3)
    assert len(api.webhook_deliveries) == attempts
    assert not push_tasks()
    updates = await bot.get_updates()
    assert [u.message.text for u in updates if u.message] == ["stuck"]
    assert (await bot.get_webhook_info()).url == ""


async def test_set_webhook_options(api: FakeBotAPI, bot: Bot, endpoint: Endpoint) -> None:
    api.send_text(USER, "old news")
    assert await bot.set_webhook(
        endpoint.url, drop_pending_updates=True, allowed_updates=["callback_query"]
    )
    assert api.pending_updates() == []
    api.send_text(USER, "not wanted")  # a message, but only callback queries were asked for
    api.send_raw_update({"callback_query": {"id": "77", "from": {"id": USER}, "data": "x"}})
    await api.wait_for(lambda: len(delivered(api)) == 1)
    assert list(endpoint.requests[0][1]) == ["update_id", "callback_query"]
    info = await bot.get_webhook_info()
    assert info.allowed_updates == ("callback_query",)
    assert info.max_connections == 40

    for bad in ("with space", "x" * 257):
        with pytest.raises(BadRequest, match=r"(?i)secret token"):
            await bot.set_webhook(endpoint.url, secret_token=bad)
    with pytest.raises(BadRequest, match=r"(?i)https url"):
        await bot.set_webhook("ftp://example.com/hook")
    assert await bot.set_webhook("")  # an empty URL removes the webhook, like deleteWebhook
    assert api.webhook_url == ""
    assert not push_tasks()


async def test_server_stop_ends_the_push_task_and_start_resumes_it(
    api: FakeBotAPI, server: FakeBotAPIServer, bot: Bot
) -> None:
    port = free_port()
    assert await bot.set_webhook(f"http://127.0.0.1:{port}/hook")
    api.send_text(USER, "while the bot is down")
    await api.wait_for(lambda: len(api.webhook_deliveries) >= 1)
    await server.stop()
    assert not push_tasks()
    assert api.webhook_url  # Telegram keeps the webhook while it can't reach the bot

    late = Endpoint()
    await late.start(port)
    try:
        await server.start()
        await api.wait_for(lambda: len(delivered(api)) == 1, timeout=5)
        assert late.requests[0][1]["message"]["text"] == "while the bot is down"
    finally:
        await late.stop()


async def test_post_to_webhook_sends_exactly_what_it_is_given(
    api: FakeBotAPI, bot: Bot, endpoint: Endpoint
) -> None:
    endpoint.statuses.extend([403, 200])
    assert await bot.set_webhook(endpoint.url, secret_token="right")
    raw = {"update_id": 1, "message": {"text": "forged"}}
    assert await api.post_to_webhook(raw, secret="wrong") == 403
    assert await api.post_to_webhook(raw, secret=None, url=endpoint.url) == 200
    headers, body = endpoint.requests[0]
    assert (headers[SECRET_TOKEN_HEADER], headers["Content-Type"], body) == (
        "wrong",
        "application/json",
        raw,
    )
    assert SECRET_TOKEN_HEADER not in endpoint.requests[1][0]
    assert api.webhook_deliveries == []  # neither queued nor recorded
    assert api.pending_updates() == []


def push_tasks() -> list[asyncio.Task[Any]]:
    return [
        task
        for task in asyncio.all_tasks()
        if task.get_name() == "fake-bot-api-webhook" and not task.done()
    ]


# ------------------------------------------------------------------------------ PTB in-process


def replied(api: FakeBotAPI, chat_id: int, fragment: str) -> bool:
    return any(message.contains(fragment) for message in api.sent_messages(chat_id))


def forged_update() -> dict[str, Any]:
    """A /start from STRANGER that never went through the fake's queue."""
    return {
        "update_id": 999_999,
        "message": {
            "message_id": 1,
            "date": 1_700_000_000,
            "chat": {"id": STRANGER, "type": "private", "first_name": "Mallory"},
            "from": {"id": STRANGER, "is_bot": False, "first_name": "Mallory"},
            "text": "/start",
            "entities": [{"type": "bot_command", "offset": 0, "length": 6}],
        },
    }


async def test_ptb_webhook_server_takes_pushed_updates_and_refuses_wrong_secrets(
    api: FakeBotAPI, server: FakeBotAPIServer
) -> None:
    """PTB's own tornado server, as `run_webhook` starts it, in this process."""

    async def echo(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        assert update.effective_message is not None
        await update.effective_message.reply_text(f"echo {update.effective_message.text}")

    port, secret = free_port(), secrets.token_urlsafe(24)
    url = f"http://127.0.0.1:{port}/telegram"
    application = Application.builder().token(TEST_TOKEN).base_url(server.base_url).build()
    application.add_handler(CommandHandler("start", echo))
    async with application:
        assert application.updater is not None
        # setWebhook comes before tornado listens: the first pushes may be refused.
        api.send_command(USER, "start", "early")
        await application.updater.start_webhook(
            listen="127.0.0.1",
            port=port,
            url_path="telegram",
            webhook_url=url,
            secret_token=secret,
            allowed_updates=["message"],
        )
        await application.start()
        try:
            call = api.calls_to("setWebhook")[-1]
            assert (call.params["url"], call.params["secret_token"]) == (url, secret)
            # (it may have been answered already while the application started)
            await api.wait_for(lambda: replied(api, USER, "echo /start early"))
            api.send_command(USER, "start", "again")
            await api.wait_for_bot_message(USER, contains="echo /start again")

            forged = forged_update()
            assert await api.post_to_webhook(forged, secret="not-the-secret") == 403
            assert await api.post_to_webhook(forged, secret=None) == 403
            assert await api.post_to_webhook(forged, secret="") == 403
            assert await api.post_to_webhook(forged, secret=secret, url=url + "/other") == 404
            # The same update with the right secret is taken: the 403s were about the secret.
            assert await api.post_to_webhook(forged, secret=secret) == 200
            await api.wait_for(lambda: replied(api, STRANGER, "echo /start"))
            assert len(api.sent_messages(STRANGER)) == 1
        finally:
            await application.updater.stop()
            await application.stop()


# ------------------------------------------------------------------------------ the real bot


def bot_env(api_server: FakeBotAPIServer, tmp_path: Path, port: int, secret: str) -> dict[str, str]:
    return {
        **os.environ,
        "TELEGRAM_BOT_TOKEN": TEST_TOKEN,
        "TELEGRAM_API_BASE_URL": api_server.base_url,
        "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'data' / 'bot.db'}",
        "DATA_KEY_FILE": str(tmp_path / "data" / "backcalm.key"),
        "WEBHOOK_URL": f"http://127.0.0.1:{port}/telegram",
        "WEBHOOK_LISTEN": "127.0.0.1",
        "WEBHOOK_PORT": str(port),
        "WEBHOOK_SECRET": secret,
        "PYTHONPATH": str(ROOT),
        "LOG_LEVEL": "DEBUG",
    }


def read_log(log: Path) -> str:
    return log.read_text(errors="replace")


def log_tail(log: Path) -> str:
    return read_log(log)[-4000:]


async def wait_while_running(
    api: FakeBotAPI,
    process: asyncio.subprocess.Process,
    log: Path,
    check: Callable[[], bool],
    what: str,
    timeout: float = 30.0,  # noqa: ASYNC109
) -> None:
    """Wait for ``check()``, failing at once (with the bot's log) if the process ends."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not check():
        if process.returncode is not None or loop.time() > deadline:
            state = f"exited with {process.returncode}" if process.returncode is not None else ""
            pytest.fail(
                f"{what}: not within {timeout}s {state}\n{api.describe()}\n"
                f"--- bot log (tail) ---\n{log_tail(log)}"
            )
        with contextlib.suppress(AssertionError):  # not yet: look at the process again
            await api.wait_for(check, timeout=0.5)


async def test_the_bot_process_in_webhook_mode(
    fake_api: FakeBotAPI, api_server: FakeBotAPIServer, tmp_path: Path
) -> None:
    port, secret = free_port(), secrets.token_urlsafe(32)
    url = f"http://127.0.0.1:{port}/telegram"
    log = tmp_path / "bot.log"
    with log.open("wb") as log_file:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bot",
            cwd=tmp_path,
            env=bot_env(api_server, tmp_path, port, secret),
            stdout=log_file,
            stderr=log_file,
        )
    try:

        def webhook_set() -> bool:
            return any(
                call.ok
                and call.params.get("url") == url
                and call.params.get("secret_token") == secret
                for call in fake_api.calls_to("setWebhook")
            )

        await wait_while_running(fake_api, process, log, webhook_set, "setWebhook(url, secret)")
        assert fake_api.webhook_url == url
        assert fake_api.webhook_secret == secret

        sent = [fake_api.send_command(USER, "/start"), fake_api.send_command(USER, "/help")]
        replies = len(fake_api.sent_messages(USER))

        def answered() -> bool:
            texts = [m.text or "" for m in fake_api.sent_messages(USER)[replies:]]
            return any("welcome" in t for t in texts) and any("What I can do" in t for t in texts)

        await wait_while_running(fake_api, process, log, answered, "replies to /start and /help")
        welcome = next(m for m in fake_api.sent_messages(USER) if m.contains("welcome"))
        assert "BackCalm" in visible_text(welcome.text or "")
        pushed = {d.update_id for d in fake_api.webhook_deliveries if d.ok and d.url == url}
        assert {update["update_id"] for update in sent} <= pushed

        # Anybody can find the URL; without the secret, the bot must not listen.
        assert await fake_api.post_to_webhook(forged_update(), secret="wrong-secret") == 403
        assert await fake_api.post_to_webhook(forged_update(), secret=None) == 403
        # A real update after the forged ones is answered; the forged ones never are.
        fake_api.send_command(USER, "/help")
        await fake_api.wait_for_bot_message(USER, contains="What I can do", timeout=30)
        await asyncio.sleep(0.5)
        assert fake_api.sent_messages(STRANGER) == []

        assert not [call for call in fake_api.calls_to("getUpdates") if call.ok], (
            "a webhook bot must not poll"
        )

        process.send_signal(signal.SIGTERM)
        await asyncio.wait_for(process.wait(), timeout=10)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    output = read_log(log)
    assert process.returncode == 0, log_tail(log)
    assert "BackCalm is up" in output
    assert TEST_TOKEN.split(":")[1] not in output
    assert secret not in output
