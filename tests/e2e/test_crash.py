"""A real bot process killed with SIGKILL mid-broadcast never sends a tip twice."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections import Counter
from pathlib import Path

from sqlalchemy import func, select

from bot.db.engine import create_engine, create_sessionmaker
from bot.db.models import Delivery, DeliveryStatus
from tests.fakes.telegram_api import TEST_TOKEN, FakeBotAPI, FakeBotAPIServer
from tests.harness import due_users

ROOT = Path(__file__).resolve().parent.parent.parent
USERS = range(50_001, 52_001)  # 2,000 subscribers, all due now


async def start_bot(env: dict[str, str], cwd: Path) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        cwd=cwd,
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )


async def test_sigkill_three_times_during_a_2000_user_delivery(
    fake_api: FakeBotAPI, api_server: FakeBotAPIServer, tmp_path: Path
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'crash.db'}"
    await due_users(url, USERS)
    db = create_engine(url)
    sessions = create_sessionmaker(db)
    env = {
        **os.environ,
        "TELEGRAM_BOT_TOKEN": TEST_TOKEN,
        "TELEGRAM_API_BASE_URL": api_server.base_url,
        "DATABASE_URL": url,
        "PYTHONPATH": str(ROOT),
        "DELIVERY_TICK_SECONDS": "0.2",
        "DELIVERY_BATCH_SIZE": "100",
        "DELIVERY_RATE_PER_SECOND": "400",
    }

    def sent() -> int:
        return fake_api.sent_count

    for kill_at in (300, 800, 1300):
        process = await start_bot(env, tmp_path)
        try:
            await fake_api.wait_for(lambda k=kill_at: sent() >= k, timeout=60)  # type: ignore[misc]
        finally:
            process.send_signal(signal.SIGKILL)
            await process.wait()

    process = await start_bot(env, tmp_path)
    try:

        async def done() -> bool:
            async with sessions() as session:
                waiting = await session.scalar(
                    select(func.count()).where(Delivery.status == DeliveryStatus.CLAIMED)
                )
                total = await session.scalar(select(func.count()).select_from(Delivery))
            return waiting == 0 and total == len(USERS)

        for _ in range(300):
            if await done():
                break
            await asyncio.sleep(0.2)
        assert await done(), "the delivery did not complete after the restarts"
    finally:
        process.send_signal(signal.SIGTERM)
        await asyncio.wait_for(process.wait(), timeout=15)

    per_chat = Counter(m.chat_id for m in fake_api.sent_messages())
    assert max(per_chat.values()) == 1, "zero duplicates in the fake's log"
    async with sessions() as session:
        rows = await session.execute(select(Delivery.user_id, Delivery.status))
        statuses = dict(rows.all())
    await db.dispose()
    assert set(statuses) == set(USERS), "every user has exactly one delivery record"
    unknown = {u for u, s in statuses.items() if s == DeliveryStatus.UNKNOWN}
    assert {u for u, s in statuses.items() if s == DeliveryStatus.SENT} | unknown == set(USERS)
    for user in USERS:
        if user not in unknown:
            assert per_chat[user] == 1, user
    missing = [u for u in USERS if per_chat[u] == 0]
    assert set(missing) <= unknown, "only recorded in-flight messages can be missing"
    assert len(unknown) < 3 * 200, "at most the in-flight messages of each killed process"
