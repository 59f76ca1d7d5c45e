"""Operating BackCalm: roles, graceful stop, status, backups, copies and metrics."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sqlite3
import sys
from collections import Counter
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from bot.db.engine import create_engine, create_sessionmaker
from bot.db.models import Delivery, DeliveryStatus, Schedule, ScheduleKind, User, utcnow
from tests.conftest import POSTGRES_URL, reset_postgres
from tests.fakes.telegram_api import TEST_TOKEN, FakeBotAPI, FakeBotAPIServer
from tests.harness import due_users

ROOT = Path(__file__).resolve().parent.parent.parent


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def bot_env(url: str, api_server: FakeBotAPIServer, folder: Path, **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "TELEGRAM_BOT_TOKEN": TEST_TOKEN,
        "TELEGRAM_API_BASE_URL": api_server.base_url,
        "DATABASE_URL": url,
        "DATA_KEY_FILE": str(folder / "backcalm.key"),
        "PYTHONPATH": str(ROOT),
        "DELIVERY_TICK_SECONDS": "0.2",
        **extra,
    }


async def spawn(env: dict[str, str], folder: Path, *args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        *args,
        cwd=folder,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


async def tail(process: asyncio.subprocess.Process) -> str:
    """The end of a finished child's log, for a failing assertion."""
    assert process.stderr is not None
    return (await process.stderr.read()).decode(errors="replace")[-3000:]


async def statuses(url: str) -> Counter[DeliveryStatus]:
    engine = create_engine(url)
    async with create_sessionmaker(engine)() as session:
        rows = await session.execute(
            select(Delivery.status, func.count()).group_by(Delivery.status)
        )
        result: Counter[DeliveryStatus] = Counter(dict(rows.all()))
    await engine.dispose()
    return result


async def test_a_second_delivery_worker_on_sqlite_refuses(
    api_server: FakeBotAPIServer, tmp_path: Path
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'one.db'}"
    env = bot_env(url, api_server, tmp_path)
    first = await spawn(env, tmp_path, "run", "--role", "delivery")
    try:
        await asyncio.sleep(0.5)
        for _ in range(100):  # wait until the first worker holds the lock
            if (tmp_path / "one.db.delivery.lock").exists():
                break
            await asyncio.sleep(0.1)
        await asyncio.sleep(1.5)
        second = await spawn(env, tmp_path, "run", "--role", "delivery")
        _, stderr = await asyncio.wait_for(second.communicate(), timeout=60)
        assert second.returncode == 2
        assert "another delivery worker already runs" in stderr.decode()
        assert "Traceback" not in stderr.decode()
        assert first.returncode is None, "the first worker keeps running"
    finally:
        first.send_signal(signal.SIGTERM)
        await asyncio.wait_for(first.wait(), timeout=15)
    assert first.returncode == 0


async def test_sigterm_mid_delivery_leaves_no_claim_without_an_outcome(
    fake_api: FakeBotAPI, api_server: FakeBotAPIServer, tmp_path: Path
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'stop.db'}"
    await due_users(url, range(1, 1001))
    env = bot_env(url, api_server, tmp_path, DELIVERY_RATE_PER_SECOND="100")
    process = await spawn(env, tmp_path)
    await fake_api.wait_for(lambda: fake_api.sent_count >= 150, timeout=60)
    process.send_signal(signal.SIGTERM)
    started = asyncio.get_running_loop().time()
    await asyncio.wait_for(process.wait(), timeout=15)
    assert asyncio.get_running_loop().time() - started < 10
    assert process.returncode == 0, await tail(process)
    counts = await statuses(url)
    assert counts[DeliveryStatus.CLAIMED] == 0, "every claim has an outcome or was handed back"
    assert counts[DeliveryStatus.SENT] == len(fake_api.sent_messages())
    assert counts[DeliveryStatus.SENT] < 1000

    # After a restart the rest is delivered, each person once.
    process = await spawn(env, tmp_path)
    await fake_api.wait_for(lambda: fake_api.sent_count >= 1000, timeout=60)
    process.send_signal(signal.SIGTERM)
    await asyncio.wait_for(process.wait(), timeout=15)
    assert max(Counter(m.chat_id for m in fake_api.sent_messages()).values()) == 1
    assert (await statuses(url))[DeliveryStatus.SENT] == 1000


async def test_status_backup_and_metrics(
    fake_api: FakeBotAPI, api_server: FakeBotAPIServer, tmp_path: Path
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'live.db'}"
    await due_users(url, range(1, 21))
    port = free_port()
    env = bot_env(url, api_server, tmp_path, METRICS_PORT=str(port))
    process = await spawn(env, tmp_path)
    try:
        await fake_api.wait_for(lambda: fake_api.sent_count >= 20, timeout=60)
        fake_api.send_command(99, "/start")
        await fake_api.wait_for_bot_message(99, contains="welcome", timeout=20)
        async with httpx.AsyncClient() as client:
            metrics = (await client.get(f"http://127.0.0.1:{port}/metrics")).text
        assert "backcalm_updates_total" in metrics
        assert 'backcalm_deliveries_total{outcome="sent"} 20.0' in metrics
        assert "backcalm_due_backlog" in metrics
        assert "backcalm_tick_seconds_count" in metrics

        status = await spawn(env, tmp_path, "status")
        out, _ = await asyncio.wait_for(status.communicate(), timeout=60)
        text = out.decode()
        assert status.returncode == 0
        assert "database: reachable" in text
        assert "(up to date)" in text
        assert "users: 21" in text
        assert "subscribers: 20" in text
        assert "due backlog: 0" in text
        assert "deliveries today: sent 20" in text
        assert "last engine tick: never" not in text

        backup = await spawn(env, tmp_path, "db", "backup", str(tmp_path / "copy.db"))
        out, err = await asyncio.wait_for(backup.communicate(), timeout=60)
        assert backup.returncode == 0, err.decode()
        with sqlite3.connect(tmp_path / "copy.db") as copy:
            assert copy.execute("SELECT count(*) FROM deliveries").fetchone() == (20,)
            assert copy.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    finally:
        process.send_signal(signal.SIGTERM)
        await asyncio.wait_for(process.wait(), timeout=15)


async def test_db_copy_moves_everything(tmp_path: Path) -> None:
    source = f"sqlite+aiosqlite:///{tmp_path / 'from.db'}"
    await due_users(source, range(1, 51))
    target = POSTGRES_URL or f"sqlite+aiosqlite:///{tmp_path / 'to.db'}"
    if POSTGRES_URL:
        await reset_postgres(POSTGRES_URL)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    copy = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        "db",
        "copy",
        source,
        target,
        cwd=tmp_path,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(copy.communicate(), timeout=120)
    assert copy.returncode == 0, err.decode()
    assert "users 50" in out.decode()
    assert "schedules 50" in out.decode()
    engine = create_engine(target)
    async with create_sessionmaker(engine)() as session:
        assert await session.scalar(select(func.count()).select_from(Schedule)) == 50
    # New rows after the copy get fresh ids (PostgreSQL sequences continue).
    async with create_sessionmaker(engine)() as session, session.begin():
        session.add(User(id=1000, chat_id=1000, focus_topics=[]))
        await session.flush()
        session.add(
            Schedule(
                user_id=1000,
                kind=ScheduleKind.DAILY_TIP,
                local_time=utcnow().time(),
                timezone="UTC",
            )
        )
    await engine.dispose()
    again = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        "db",
        "copy",
        source,
        target,
        cwd=tmp_path,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await asyncio.wait_for(again.communicate(), timeout=120)
    assert again.returncode == 2
    assert "is not empty" in err.decode()


@pytest.mark.postgres
async def test_three_delivery_workers_and_an_updates_process_on_postgres(
    fake_api: FakeBotAPI, api_server: FakeBotAPIServer, tmp_path: Path
) -> None:
    """20,000 due tips, one worker stopped and restarted midway: none twice, none missing."""
    await reset_postgres(POSTGRES_URL)
    total = int(os.environ.get("BACKCALM_WORKERS_TEST_TOTAL", "20000"))
    await due_users(POSTGRES_URL, range(1, total + 1))
    env = bot_env(
        POSTGRES_URL,
        api_server,
        tmp_path,
        DELIVERY_RATE_PER_SECOND="2000",
        DELIVERY_BATCH_SIZE="300",
    )
    updates = await spawn(env, tmp_path, "run", "--role", "updates")
    workers = [await spawn(env, tmp_path, "run", "--role", "delivery") for _ in range(3)]
    try:
        await fake_api.wait_for(lambda: fake_api.sent_count >= total // 3, timeout=300)
        workers[0].send_signal(signal.SIGTERM)
        await asyncio.wait_for(workers[0].wait(), timeout=15)
        assert workers[0].returncode == 0
        workers[0] = await spawn(env, tmp_path, "run", "--role", "delivery")
        fake_api.send_command(total + 5, "/help")
        await fake_api.wait_for_bot_message(total + 5, contains="What I can do", timeout=30)
        await fake_api.wait_for(lambda: fake_api.sent_count >= total + 1, timeout=600)
    finally:
        for process in [updates, *workers]:
            if process.returncode is None:
                process.send_signal(signal.SIGTERM)
        for process in [updates, *workers]:
            await asyncio.wait_for(process.wait(), timeout=20)
    per_chat = Counter(m.chat_id for m in fake_api.sent_messages() if m.chat_id <= total)
    assert len(per_chat) == total, "none missing"
    assert max(per_chat.values()) == 1, "none twice"
    counts = await statuses(POSTGRES_URL)
    assert counts[DeliveryStatus.SENT] == total
