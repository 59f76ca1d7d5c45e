"""Key rotation without downtime for reads, and a wrong key stopping start-up."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import select

from bot.__main__ import rotate_keys
from bot.config import Settings
from bot.crypto import KeyringHolder, generate_key
from bot.db.engine import create_engine, create_sessionmaker, unit_of_work
from bot.db.migrate import upgrade
from bot.db.models import CheckIn, User
from bot.services import checkins
from bot.services.checkins import Scores
from tests.fakes.telegram_api import TEST_TOKEN

ROOT = Path(__file__).resolve().parent.parent
NOW = datetime(2026, 6, 10, 9, 0, tzinfo=UTC)


async def seed(settings: Settings, count: int) -> None:
    engine = create_engine(settings.database_url)
    await upgrade(engine)
    sessions = create_sessionmaker(engine)
    holder, _ = KeyringHolder.load(
        settings.data_encryption_key.get_secret_value() if settings.data_encryption_key else None,
        settings.key_file(),
    )
    async with unit_of_work(sessions) as session:
        session.add(User(id=1, chat_id=1, focus_topics=[], checkin_consent_at=NOW))
        await session.flush()
        for n in range(count):
            await checkins.save(session, holder.get(), 1, Scores(pain=n % 11, note=f"n{n}"), NOW)
    await engine.dispose()


async def test_rotation_reencrypts_everything_and_reads_never_stop(make_settings) -> None:  # type: ignore[no-untyped-def]
    settings: Settings = make_settings()
    await seed(settings, 700)
    old_key = settings.key_file().read_text().split()[0]

    engine = create_engine(settings.database_url)
    sessions = create_sessionmaker(engine)
    reader, _ = KeyringHolder.load(None, settings.key_file(), interval=0.0)
    reads = 0

    async def keep_reading() -> None:
        nonlocal reads
        while not rotation.done():
            async with sessions() as session:
                entries = await checkins.entries_since(session, reader.get(), 1, NOW.date())
            assert len(entries) == 700
            reads += 1
            await asyncio.sleep(0)

    rotation = asyncio.create_task(rotate_keys(settings, settle_seconds=0.1))
    await keep_reading()
    message = await rotation
    assert "re-encrypted 700 rows" in message
    assert reads > 0
    lines = [line for line in settings.key_file().read_text().split() if line]
    assert len(lines) == 1
    assert lines[0] != old_key, "the old key is gone from the key file"
    fresh, _ = KeyringHolder.load(None, settings.key_file())
    async with sessions() as session:
        ids = set(await session.scalars(select(CheckIn.key_id).distinct()))
        entries = await checkins.entries_since(session, fresh.get(), 1, NOW.date())
    assert ids == {fresh.get().current_id}
    assert sorted(e.scores.note or "" for e in entries)[:2] == ["n0", "n1"]
    await engine.dispose()


async def test_a_wrong_key_stops_start_up(make_settings, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    settings: Settings = make_settings(data_encryption_key=generate_key())
    await seed(settings, 3)
    env = {
        **os.environ,
        "TELEGRAM_BOT_TOKEN": TEST_TOKEN,
        "DATABASE_URL": settings.database_url,
        "DATA_ENCRYPTION_KEY": generate_key(),
        "PYTHONPATH": str(ROOT),
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
    _, stderr = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode == 2
    assert "not configured" in stderr.decode()
    assert "Traceback" not in stderr.decode()


def test_keys_generate_prints_a_usable_key(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "bot", "keys", "generate"],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0
    key = result.stdout.strip()
    holder, _ = KeyringHolder.load(key, tmp_path / "unused.key")
    assert holder.get().decrypt(holder.get().encrypt(b"x", aad=b"a"), aad=b"a") == b"x"
