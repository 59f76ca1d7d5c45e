"""Start-up stays lean: `python -m bot` on an up-to-date database imports no optional extras.

Each module named here costs a noticeable part of start-up on a slow machine and is only
needed on some paths: Alembic when a migration is due, matplotlib for charts, timezonefinder
for a shared location, prometheus_client with METRICS_PORT, aiohttp and bot.devtools for the
demo, content_lint and ops for operator commands.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import textwrap
from pathlib import Path

import pytest

from bot import metrics
from bot.db import migrate
from bot.db.engine import create_engine
from tests.fakes.telegram_api import TEST_TOKEN, FakeBotAPI, FakeBotAPIServer

ROOT = Path(__file__).resolve().parent.parent

NOT_AT_START_UP = (
    "alembic",
    "mako",
    "matplotlib",
    "timezonefinder",
    "prometheus_client",
    "aiohttp",
    "bot.devtools",
    "bot.content_lint",
    "bot.ops",
    "sqlalchemy.dialects.postgresql",  # a SQLite bot never needs it
)

# `python -m bot`, exactly (runpy, as __main__), writing what it imported when it exits.
RUN_BOT = textwrap.dedent(
    """
    import atexit, gc, json, runpy, sys

    REPORT = sys.argv[1]

    def record():
        with open(REPORT, "w", encoding="utf-8") as out:
            json.dump({"modules": sorted(sys.modules), "gc_enabled": gc.isenabled()}, out)

    atexit.register(record)
    sys.argv = ["bot"]
    runpy.run_module("bot", run_name="__main__", alter_sys=True)
    """
)


def _loaded(modules: list[str], name: str) -> list[str]:
    return [m for m in modules if m == name or m.startswith(name + ".")]


async def _run_until_polling(
    fake_api: FakeBotAPI, api_server: FakeBotAPIServer, tmp_path: Path, database: Path
) -> dict[str, object]:
    report = tmp_path / "imported.json"
    env = {
        **os.environ,
        "TELEGRAM_BOT_TOKEN": TEST_TOKEN,
        "TELEGRAM_API_BASE_URL": api_server.base_url,
        "DATABASE_URL": f"sqlite+aiosqlite:///{database}",
        "PYTHONPATH": str(ROOT),
    }
    env.pop("METRICS_PORT", None)
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        RUN_BOT,
        str(report),
        cwd=tmp_path,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        await fake_api.wait_for(lambda: fake_api.waiting_pollers > 0, timeout=60)
        process.send_signal(signal.SIGTERM)
        fake_api.interrupt_polls()
        _, stderr = await asyncio.wait_for(process.communicate(), timeout=30)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode == 0, stderr.decode()[-2000:]
    result: dict[str, object] = json.loads(report.read_text(encoding="utf-8"))
    return result


async def test_start_up_on_a_current_database_imports_no_optional_module(
    fake_api: FakeBotAPI, api_server: FakeBotAPIServer, tmp_path: Path
) -> None:
    database = tmp_path / "data" / "bot.db"
    engine = create_engine(f"sqlite+aiosqlite:///{database}")
    await migrate.upgrade(engine)
    await engine.dispose()

    result = await _run_until_polling(fake_api, api_server, tmp_path, database)

    modules = result["modules"]
    assert isinstance(modules, list)
    assert {"bot.app", "bot.handlers", "telegram.ext", "sqlalchemy.orm"} <= set(modules)
    unexpected = {name: _loaded(modules, name) for name in NOT_AT_START_UP}
    assert {name: found for name, found in unexpected.items() if found} == {}
    assert result["gc_enabled"] is True, "the garbage collector runs again once serving"


async def test_start_up_on_a_new_database_still_migrates(
    fake_api: FakeBotAPI, api_server: FakeBotAPIServer, tmp_path: Path
) -> None:
    database = tmp_path / "data" / "bot.db"

    result = await _run_until_polling(fake_api, api_server, tmp_path, database)

    modules = result["modules"]
    assert isinstance(modules, list)
    assert "alembic.command" in modules
    engine = create_engine(f"sqlite+aiosqlite:///{database}")
    try:
        assert await migrate.current_revision(engine) == migrate.head_revision()
        assert await migrate.is_at_head(engine)
    finally:
        await engine.dispose()


# ---------------------------------------------------------------- the migration check


def test_script_heads_agree_with_alembic() -> None:
    from alembic.script import ScriptDirectory

    heads = ScriptDirectory.from_config(migrate.alembic_config()).get_heads()
    assert migrate.script_heads() == frozenset(heads)
    assert len(heads) == 1


def _script(folder: Path, name: str, body: str) -> None:
    folder.mkdir(exist_ok=True)
    (folder / name).write_text(textwrap.dedent(body), encoding="utf-8")


def test_script_heads_follow_the_chain(tmp_path: Path) -> None:
    _script(tmp_path, "a.py", 'revision = "a"\ndown_revision = None\n')
    _script(tmp_path, "b.py", 'revision: str = "b"\ndown_revision: str | None = "a"\n')
    _script(tmp_path, "c.py", 'revision = "c"\ndown_revision = "a"\n')
    _script(tmp_path, "m.py", 'revision = "m"\ndown_revision = ("b", "c")\n')
    _script(tmp_path, "__init__.py", "")
    assert migrate.script_heads(tmp_path) == frozenset({"m"})


@pytest.mark.parametrize(
    "body",
    [
        'revision = "b"\ndown_revision = "a"\nbranch_labels = ("x",)\n',
        'revision = "b"\ndown_revision = "a"\ndepends_on = "z"\n',
        'revision = make_id()\ndown_revision = "a"\n',
        'down_revision = "a"\n',
        'revision = "b"\ndown_revision = "nowhere"\n',
        'revision = "b"\ndown_revision = "a"\ndef (:\n',
    ],
)
def test_script_heads_leave_anything_unusual_to_alembic(tmp_path: Path, body: str) -> None:
    _script(tmp_path, "a.py", 'revision = "a"\ndown_revision = None\n')
    _script(tmp_path, "b.py", body)
    assert migrate.script_heads(tmp_path) is None


def test_script_heads_of_an_empty_folder_are_unknown(tmp_path: Path) -> None:
    assert migrate.script_heads(tmp_path) is None


async def test_upgrade_from_an_older_revision_and_the_check(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'old.db'}")
    try:
        assert not await migrate.is_at_head(engine)
        await migrate.upgrade(engine, "0002")
        assert await migrate.current_revision(engine) == "0002"
        assert not await migrate.is_at_head(engine)
        await migrate.upgrade(engine)
        assert await migrate.current_revision(engine) == migrate.head_revision()
        assert await migrate.is_at_head(engine)
        await migrate.upgrade(engine)  # nothing left to do
        assert await migrate.current_revision(engine) == migrate.head_revision()
    finally:
        await engine.dispose()


# ---------------------------------------------------------------- metrics


def test_metrics_ignore_what_they_are_told_until_served() -> None:
    if metrics.enabled():
        pytest.skip("this process already serves metrics")
    metrics.UPDATES.inc()
    metrics.DELIVERIES.labels("sent").inc()
    metrics.DUE_BACKLOG.set(3)
    metrics.REPLY_LATENCY.observe(0.1)
    with metrics.TICK_SECONDS.time():
        pass
    assert not metrics.enabled()
