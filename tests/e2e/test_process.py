"""`python -m bot` as an operator runs it: a real process polling the fake Bot API."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

from bot.content import visible_text
from tests.fakes.telegram_api import TEST_TOKEN, FakeBotAPI, FakeBotAPIServer

ROOT = Path(__file__).resolve().parent.parent.parent


async def test_the_bot_process_answers_and_stops_cleanly(
    fake_api: FakeBotAPI, api_server: FakeBotAPIServer, tmp_path: Path
) -> None:
    env = {
        **os.environ,
        "TELEGRAM_BOT_TOKEN": TEST_TOKEN,
        "TELEGRAM_API_BASE_URL": api_server.base_url,
        "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'data' / 'bot.db'}",
        "PYTHONPATH": str(ROOT),
        "LOG_LEVEL": "DEBUG",
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        cwd=tmp_path,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        fake_api.send_command(501, "/start")
        reply = await fake_api.wait_for_bot_message(501, contains="welcome", timeout=30)
        assert "BackCalm" in visible_text(reply.text or "")
        assert (tmp_path / "data" / "bot.db").exists()
        process.send_signal(signal.SIGTERM)
        _, stderr = await asyncio.wait_for(process.communicate(), timeout=15)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode == 0
    log = stderr.decode()
    assert "BackCalm is up" in log
    assert TEST_TOKEN not in log
    assert TEST_TOKEN.split(":")[1] not in log
