"""Configuration: clear one-line failures with exit code 2, and documented settings."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from bot.config import ConfigError, Settings, load_settings
from tests.fakes.telegram_api import TEST_TOKEN

ROOT = Path(__file__).resolve().parent.parent


def run_bot(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """`python -m bot` in an empty folder (no .env) with only the given settings."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("TELEGRAM_", "DATABASE_"))}
    clean.update(env)
    clean["PYTHONPATH"] = str(ROOT)
    return subprocess.run(
        [sys.executable, "-m", "bot"],
        cwd=tmp_path,
        env=clean,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_no_token_says_how_to_get_one(tmp_path: Path) -> None:
    result = run_bot(tmp_path)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1
    assert "TELEGRAM_BOT_TOKEN" in result.stderr
    assert "@BotFather" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"TELEGRAM_BOT_TOKEN": "not-a-token"}, "TELEGRAM_BOT_TOKEN"),
        ({"TELEGRAM_BOT_TOKEN": TEST_TOKEN, "DATABASE_URL": "mysql://x"}, "DATABASE_URL"),
        ({"TELEGRAM_BOT_TOKEN": TEST_TOKEN, "LOG_LEVEL": "LOUD"}, "LOG_LEVEL"),
        ({"TELEGRAM_BOT_TOKEN": TEST_TOKEN, "ADMIN_IDS": "alice"}, "ADMIN_IDS"),
        (
            {"TELEGRAM_BOT_TOKEN": TEST_TOKEN, "TELEGRAM_API_BASE_URL": "api"},
            "TELEGRAM_API_BASE_URL",
        ),
        (
            {"TELEGRAM_BOT_TOKEN": TEST_TOKEN, "DELIVERY_RATE_PER_SECOND": "0"},
            "DELIVERY_RATE_PER_SECOND",
        ),
    ],
)
def test_an_invalid_setting_names_the_variable(
    tmp_path: Path, env: dict[str, str], variable: str
) -> None:
    result = run_bot(tmp_path, **env)
    assert result.returncode == 2
    assert result.stderr.startswith(variable + ":")
    assert "Traceback" not in result.stderr
    if variable == "TELEGRAM_BOT_TOKEN":
        assert "not-a-token" not in result.stderr


def test_an_unreachable_database_path_names_database_url(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    result = run_bot(
        tmp_path,
        TELEGRAM_BOT_TOKEN=TEST_TOKEN,
        DATABASE_URL=f"sqlite+aiosqlite:///{blocker}/sub/backcalm.db",
    )
    assert result.returncode == 2
    assert result.stderr.startswith("DATABASE_URL:")
    assert "Traceback" not in result.stderr


def test_settings_come_from_dotenv(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("TELEGRAM_BOT_TOKEN", "ADMIN_IDS", "TELEGRAM_API_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    (tmp_path / ".env").write_text(
        f"TELEGRAM_BOT_TOKEN={TEST_TOKEN}\nADMIN_IDS=11, 22\n"
        "TELEGRAM_API_BASE_URL=http://127.0.0.1:8081/bot\n"
    )
    monkeypatch.chdir(tmp_path)
    settings = load_settings()
    assert settings.telegram_bot_token is not None
    assert settings.telegram_bot_token.get_secret_value() == TEST_TOKEN
    assert TEST_TOKEN not in repr(settings)
    assert settings.admin_ids == frozenset({11, 22})
    assert settings.telegram_api_base_file_url == "http://127.0.0.1:8081/file/bot"


def test_defaults_are_sqlite_in_data_and_the_public_api(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("DATABASE_URL", "TELEGRAM_API_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings.database_url == "sqlite+aiosqlite:///data/backcalm.db"
    assert settings.telegram_api_base_url == "https://api.telegram.org/bot"
    assert settings.telegram_api_base_file_url == "https://api.telegram.org/file/bot"


def test_load_settings_raises_one_line_per_problem() -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(_env_file=None, database_url="oracle://", log_level="x")
    lines = str(caught.value).splitlines()
    assert [line.split(":")[0] for line in lines] == ["DATABASE_URL", "LOG_LEVEL"]


def test_env_example_documents_every_setting() -> None:
    documented = set(
        re.findall(r"^#?\s*([A-Z][A-Z0-9_]+)=", (ROOT / ".env.example").read_text(), re.M)
    )
    assert documented == {name.upper() for name in Settings.model_fields}
