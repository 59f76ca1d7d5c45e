"""Settings, read once from the environment and `.env`."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from bot.db.engine import sqlite_file

SECRET_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,256}")
TOKEN_PATTERN = re.compile(r"^\d{3,20}:[A-Za-z0-9_-]{30,64}$")
DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///data/backcalm.db"
LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]


class Settings(BaseSettings):
    """Every setting BackCalm reads; `.env.example` documents each one."""

    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", case_sensitive=False
    )

    telegram_bot_token: SecretStr | None = None
    telegram_api_base_url: str = "https://api.telegram.org/bot"
    database_url: str = DEFAULT_DATABASE_URL
    admin_ids: Annotated[frozenset[int], NoDecode] = frozenset()
    log_level: LogLevel = "INFO"
    content_dir: Path = Path(__file__).resolve().parent.parent / "content"
    data_encryption_key: SecretStr | None = None
    data_key_file: Path | None = None

    delivery_tick_seconds: float = Field(default=5.0, gt=0, le=300)
    delivery_batch_size: int = Field(default=500, ge=1, le=10_000)
    delivery_rate_per_second: float = Field(default=25.0, gt=0, le=10_000)
    delivery_catchup_hours: float = Field(default=3.0, ge=0, le=48)
    telegram_global_rate: int | None = Field(default=None, ge=0, le=100_000)

    checkin_retention_days: int = Field(default=730, ge=1, le=3650)
    delivery_retention_days: int = Field(default=180, ge=1, le=3650)

    webhook_url: str | None = None
    webhook_secret: SecretStr | None = None
    webhook_listen: str = "0.0.0.0"
    webhook_port: int = Field(default=8443, ge=1, le=65535)
    metrics_port: int | None = Field(default=None, ge=1, le=65535)

    flood_max_updates: int = Field(default=20, ge=1, le=1000)
    flood_window_seconds: float = Field(default=10.0, gt=0, le=3600)
    flood_pause_seconds: float = Field(default=60.0, ge=0, le=86400)

    @field_validator("telegram_bot_token", mode="before")
    @classmethod
    def _empty_token_is_missing(cls, value: Any) -> Any:
        if isinstance(value, str) and not value.strip():
            return None
        return value

    @field_validator("telegram_bot_token")
    @classmethod
    def _token_shape(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not TOKEN_PATTERN.fullmatch(value.get_secret_value().strip()):
            raise ValueError("malformed token")
        return SecretStr(value.get_secret_value().strip()) if value is not None else None

    @field_validator("telegram_api_base_url")
    @classmethod
    def _base_url_shape(cls, value: str) -> str:
        value = value.strip()
        if not re.match(r"^https?://[^/\s]+", value):
            raise ValueError("must start with http:// or https://")
        return value

    @field_validator("database_url")
    @classmethod
    def _database_url_shape(cls, value: str) -> str:
        value = value.strip()
        if not value.startswith(("sqlite+aiosqlite://", "postgresql+asyncpg://")):
            raise ValueError("must start with sqlite+aiosqlite:// or postgresql+asyncpg://")
        return value

    @field_validator(
        "webhook_url", "metrics_port", "webhook_secret", "telegram_global_rate", mode="before"
    )
    @classmethod
    def _blank_is_unset(cls, value: Any) -> Any:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("webhook_url")
    @classmethod
    def _webhook_shape(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("https://", "http://")):
            raise ValueError("must be the public https:// address Telegram posts updates to")
        return value

    @field_validator("webhook_secret")
    @classmethod
    def _secret_shape(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not re.fullmatch(
            r"[A-Za-z0-9_-]{1,256}", value.get_secret_value()
        ):
            raise ValueError("use 1-256 characters of A-Z, a-z, 0-9, _ and -")
        return value

    @field_validator("admin_ids", mode="before")
    @classmethod
    def _split_ids(cls, value: Any) -> Any:
        if isinstance(value, str):
            parts = [p for p in re.split(r"[,\s]+", value.strip()) if p]
            return frozenset(int(p) for p in parts)
        return value

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_level(cls, value: Any) -> Any:
        return value.strip().upper() if isinstance(value, str) else value

    @property
    def telegram_api_base_file_url(self) -> str:
        """The file endpoint that belongs to the configured Bot API server."""
        base = self.telegram_api_base_url.rstrip("/")
        if base.endswith("/bot"):
            return base[: -len("bot")] + "file/bot"
        return base + "/file/bot"

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    def key_file(self) -> Path:
        """Where the data key lives when DATA_ENCRYPTION_KEY is unset: beside the database."""
        if self.data_key_file is not None:
            return self.data_key_file
        database = sqlite_file(self.database_url)
        folder = database.parent if database is not None else Path("data")
        return folder / "backcalm.key"


HOW_TO_FIX: dict[str, str] = {
    "telegram_bot_token": (
        "TELEGRAM_BOT_TOKEN: {problem}. Open Telegram, talk to @BotFather, send /newbot, "
        "and put the token it gives you in .env as TELEGRAM_BOT_TOKEN=123456:ABC... "
        "(see .env.example)."
    ),
    "telegram_api_base_url": (
        "TELEGRAM_API_BASE_URL: {problem}. Use the Bot API base in python-telegram-bot's form, "
        "e.g. https://api.telegram.org/bot"
    ),
    "database_url": (
        "DATABASE_URL: {problem}. Examples: sqlite+aiosqlite:///data/backcalm.db or "
        "postgresql+asyncpg://user@host:5432/backcalm"
    ),
    "admin_ids": "ADMIN_IDS: {problem}. Use Telegram user ids separated by commas, e.g. 1234,5678",
}


class ConfigError(Exception):
    """A setting is missing or invalid; the message is one line for the operator."""


def describe_validation_error(error: ValidationError) -> str:
    """Turn pydantic's error into one line per variable, naming the fix."""
    lines = []
    for item in error.errors():
        field = str(item["loc"][0]) if item["loc"] else "settings"
        problem = str(item["msg"]).removeprefix("Value error, ")
        template = HOW_TO_FIX.get(field, field.upper() + ": {problem}. See .env.example.")
        lines.append(template.format(problem=problem))
    return "\n".join(lines)


def load_settings(**overrides: Any) -> Settings:
    """Read settings, raising ConfigError with an operator-friendly message."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        raise ConfigError(describe_validation_error(exc)) from None


def require_token(settings: Settings) -> str:
    """The bot token, or ConfigError explaining how to get one."""
    if settings.telegram_bot_token is None:
        raise ConfigError(HOW_TO_FIX["telegram_bot_token"].format(problem="not set"))
    return settings.telegram_bot_token.get_secret_value()
