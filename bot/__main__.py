"""Command line: `python -m bot` runs the bot; `db upgrade` and `content check` help operators."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Sequence

from sqlalchemy.exc import SQLAlchemyError

from bot.config import ConfigError, Settings, load_settings, require_token
from bot.content import Content, ContentError, load_content
from bot.db import migrate
from bot.db.engine import create_engine
from bot.logs import configure_logging

EXIT_CONFIG = 2
EXIT_CONTENT = 3
logger = logging.getLogger("bot")


def _fail(message: str, code: int) -> int:
    print(message, file=sys.stderr)
    return code


def _content(settings: Settings) -> Content:
    return load_content(settings.content_dir)


async def _upgrade(settings: Settings) -> None:
    engine = create_engine(settings.database_url)
    try:
        await migrate.upgrade(engine)
    finally:
        await engine.dispose()


def _database_problem(settings: Settings, exc: Exception) -> str:
    reason = str(getattr(exc, "orig", None) or exc).splitlines()[0][:200]
    return (
        f"DATABASE_URL: cannot open the database ({reason}). Check that the path or server "
        "in DATABASE_URL exists and is writable, e.g. sqlite+aiosqlite:///data/backcalm.db"
    )


def run(settings: Settings) -> int:
    """Check everything, migrate, then poll Telegram until stopped."""
    from bot.app import build_application

    try:
        token = require_token(settings)
    except ConfigError as exc:
        return _fail(str(exc), EXIT_CONFIG)
    configure_logging(settings.log_level, secrets=[token])
    try:
        content = _content(settings)
    except ContentError as exc:
        return _fail("content/ has problems:\n" + str(exc), EXIT_CONTENT)
    try:
        asyncio.run(_upgrade(settings))
    except (OSError, SQLAlchemyError) as exc:
        return _fail(_database_problem(settings, exc), EXIT_CONFIG)
    application = build_application(settings, content)
    logger.info("starting; press Ctrl+C to stop")
    application.run_polling(allowed_updates=["message", "callback_query", "my_chat_member"])
    return 0


def content_check(settings: Settings) -> int:
    """Lint content/ and print a summary."""
    try:
        content = _content(settings)
    except ContentError as exc:
        print("\n".join(exc.problems))
        return 1
    tips = sum(len(t.tips) for t in content.topics.values())
    print(
        f"content OK: {len(content.topics)} topics, {tips} tips, "
        f"{len(content.sources)} sources, {len(list(content.messages.keys()))} messages"
    )
    return 0


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="python -m bot", description="BackCalm Telegram bot")
    sub = root.add_subparsers(dest="command")
    sub.add_parser("run", help="run the bot (the default)")
    db = sub.add_parser("db", help="database tasks")
    db_sub = db.add_subparsers(dest="db_command", required=True)
    db_sub.add_parser("upgrade", help="apply every pending migration")
    revision = db_sub.add_parser("revision", help="autogenerate a migration (developers)")
    revision.add_argument("message")
    content = sub.add_parser("content", help="content tasks")
    content_sub = content.add_subparsers(dest="content_command", required=True)
    content_sub.add_parser("check", help="lint content/ and print a summary")
    return root


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        settings = load_settings()
    except ConfigError as exc:
        return _fail(str(exc), EXIT_CONFIG)
    if args.command == "content":
        return content_check(settings)
    if args.command == "db":
        configure_logging(settings.log_level)
        try:
            if args.db_command == "upgrade":
                asyncio.run(_upgrade(settings))
                print("database is up to date")
            else:
                engine = create_engine(settings.database_url)
                asyncio.run(migrate.make_revision(engine, args.message))
        except (OSError, SQLAlchemyError) as exc:
            return _fail(_database_problem(settings, exc), EXIT_CONFIG)
        return 0
    return run(settings)


if __name__ == "__main__":
    sys.exit(main())
