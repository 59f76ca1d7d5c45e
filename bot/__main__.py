"""Command line: `python -m bot` runs the bot; `db upgrade` and `content check` help operators."""

# ruff: noqa: E402 (the collector is paused before the imports: see STARTUP_GC_PAUSED)
from __future__ import annotations

import gc

# Start-up builds about 180,000 objects that live as long as the process (modules, classes,
# SQLAlchemy's and Telegram's tables). On the way the cyclic garbage collector scans them
# again and again and finds next to nothing to free: about a fifth of start-up here. So
# `python -m bot` starts with it paused, and `resume_gc` turns it back on before serving,
# with what start-up built set aside for good (gc.freeze) so that later collections skip it.
STARTUP_GC_PAUSED = __name__ == "__main__"
if STARTUP_GC_PAUSED:
    gc.disable()

import argparse
import asyncio
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from sqlalchemy.exc import SQLAlchemyError

from bot.config import ConfigError, Settings, load_settings, require_token
from bot.content import Content, ContentError, load_content
from bot.db import migrate
from bot.db.engine import create_engine, create_sessionmaker
from bot.logs import configure_logging

if TYPE_CHECKING:
    from bot import ops
    from bot.crypto import KeyringHolder

# Start-up imports only what running the bot needs: the operator commands (status, backups,
# key rotation, content check) import their modules when they run.

ALLOWED_UPDATES = ["message", "callback_query", "my_chat_member"]
EXIT_CONFIG = 2
EXIT_CONTENT = 3
logger = logging.getLogger("bot")


def resume_gc() -> None:
    """End the start-up pause of the garbage collector (see STARTUP_GC_PAUSED)."""
    if STARTUP_GC_PAUSED and not gc.isenabled():
        gc.freeze()
        gc.enable()


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


async def _prepare(settings: Settings) -> KeyringHolder:
    """Migrate, and check that the data keys open what is stored (KeyConfigError if not)."""
    from bot.app import open_keys

    engine = create_engine(settings.database_url)
    try:
        await migrate.upgrade(engine)
        return await open_keys(settings, create_sessionmaker(engine))
    finally:
        await engine.dispose()


def _database_problem(settings: Settings, exc: Exception) -> str:
    reason = str(getattr(exc, "orig", None) or exc).splitlines()[0][:200]
    return (
        f"DATABASE_URL: cannot open the database ({reason}). Check that the path or server "
        "in DATABASE_URL exists and is writable, e.g. sqlite+aiosqlite:///data/backcalm.db"
    )


async def rotate_keys(settings: Settings, settle_seconds: float = 2.0) -> str:
    """New current key (key file mode), re-encrypt everything, drop keys nothing uses."""
    from bot.app import open_keys
    from bot.crypto import add_current_key, format_key_id, remove_keys
    from bot.services import checkins, keys

    engine = create_engine(settings.database_url)
    try:
        await migrate.upgrade(engine)
        sessions = create_sessionmaker(engine)
        holder = await open_keys(settings, sessions)
        key_file = holder.key_file
        if key_file is not None:
            new_id = add_current_key(key_file)
            holder.refresh()
            # Running bots re-read the key file about once a second: let them switch first.
            await asyncio.sleep(settle_seconds)
        else:
            new_id = format_key_id(holder.get().current_id)
        changed = await keys.reencrypt_all(sessions, holder.get)
        async with sessions() as session:
            in_use = await checkins.key_ids_in_use(session)
        if key_file is not None:
            removed = remove_keys(key_file, keep=in_use)
            return f"re-encrypted {changed} rows under key {new_id}; removed {removed} old keys"
        return (
            f"re-encrypted {changed} rows under key {new_id} (the first in DATA_ENCRYPTION_KEY); "
            "the other keys there are no longer needed"
        )
    finally:
        await engine.dispose()


def run(settings: Settings, role: str = "all") -> int:
    """Check everything, migrate, then serve until stopped (SIGTERM or Ctrl+C)."""
    from bot.app import KEYRING_KEY, PREPARED_KEY, build_application, serve_without_updates

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
        keyring = asyncio.run(_prepare(settings))
    except ConfigError as exc:
        return _fail(str(exc), EXIT_CONFIG)
    except (OSError, SQLAlchemyError) as exc:
        return _fail(_database_problem(settings, exc), EXIT_CONFIG)
    application = build_application(settings, content, role=role)  # type: ignore[arg-type]
    application.bot_data[PREPARED_KEY] = True
    application.bot_data[KEYRING_KEY] = keyring
    logger.info("starting as %s; press Ctrl+C to stop", role)
    resume_gc()
    try:
        if role == "delivery":
            asyncio.run(serve_without_updates(application))
        elif settings.webhook_url:
            secret = settings.webhook_secret
            application.run_webhook(
                listen=settings.webhook_listen,
                port=settings.webhook_port,
                url_path=urlsplit(settings.webhook_url).path.lstrip("/"),
                webhook_url=settings.webhook_url,
                secret_token=secret.get_secret_value() if secret else None,
                allowed_updates=ALLOWED_UPDATES,
            )
        else:
            application.run_polling(allowed_updates=ALLOWED_UPDATES)
    except ConfigError as exc:
        return _fail(str(exc), EXIT_CONFIG)
    return 0


def content_check(settings: Settings) -> int:
    """Load and lint content/; print the problems (exit 1) or a summary (exit 0)."""
    from bot.content_lint import lint_content_dir

    try:
        content = _content(settings)
        report = lint_content_dir(content, settings.content_dir)
    except ContentError as exc:
        print("\n".join(exc.problems))
        return 1
    if report.problems:
        print("\n".join(report.problems))
        return 1
    tips = sum(len(t.tips) for t in content.topics.values())
    print(
        f"content OK: {len(content.topics)} topics, {tips} tips, "
        f"{len(content.sources)} sources, {len(list(content.messages.keys()))} messages"
    )
    print(report.format_summary())
    return 0


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="python -m bot", description="BackCalm Telegram bot")
    sub = root.add_subparsers(dest="command")
    run_parser = sub.add_parser("run", help="run the bot (the default)")
    run_parser.add_argument(
        "--role",
        choices=["all", "updates", "delivery"],
        default="all",
        help="all: everything in one process; updates: answer people only; "
        "delivery: send scheduled messages only",
    )
    sub.add_parser("status", help="database, schema, subscribers, backlog, workers")
    db = sub.add_parser("db", help="database tasks")
    db_sub = db.add_subparsers(dest="db_command", required=True)
    db_sub.add_parser("upgrade", help="apply every pending migration")
    revision = db_sub.add_parser("revision", help="autogenerate a migration (developers)")
    revision.add_argument("message")
    backup = db_sub.add_parser("backup", help="a consistent copy of the SQLite database")
    backup.add_argument("path", type=Path)
    copy = db_sub.add_parser("copy", help="copy all data from SRC to an empty DST database")
    copy.add_argument("source", metavar="SRC")
    copy.add_argument("target", metavar="DST")
    content = sub.add_parser("content", help="content tasks")
    content_sub = content.add_subparsers(dest="content_command", required=True)
    content_sub.add_parser("check", help="lint content/ and print a summary")
    keys = sub.add_parser("keys", help="data encryption keys")
    keys_sub = keys.add_subparsers(dest="keys_command", required=True)
    keys_sub.add_parser("generate", help="print a new key for DATA_ENCRYPTION_KEY")
    keys_sub.add_parser("rotate", help="re-encrypt all stored data under a new key")
    demo = sub.add_parser("demo", help="try the bot in this terminal: no token, no network")
    demo.add_argument("--speed", type=float, default=1.0, metavar="N", help="bot clock N× faster")
    demo.add_argument("--output", type=Path, metavar="DIR", help="keep the files the bot sends")
    return root


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.command not in (None, "run"):
        resume_gc()  # only running the bot has a start-up worth the pause
    if args.command == "demo":  # self-contained: ignores .env and needs no token
        from bot.devtools.demo import main as demo

        return demo(args.speed, args.output)
    try:
        settings = load_settings()
    except ConfigError as exc:
        return _fail(str(exc), EXIT_CONFIG)
    if args.command == "content":
        return content_check(settings)
    if args.command == "keys":
        if args.keys_command == "generate":
            from bot.crypto import generate_key

            print(generate_key())
            return 0
        configure_logging(settings.log_level)
        try:
            print(asyncio.run(rotate_keys(settings)))
        except ConfigError as exc:
            return _fail(str(exc), EXIT_CONFIG)
        except (OSError, SQLAlchemyError) as exc:
            return _fail(_database_problem(settings, exc), EXIT_CONFIG)
        return 0
    if args.command == "db":
        configure_logging(settings.log_level)
        try:
            return database_task(settings, args)
        except ConfigError as exc:
            return _fail(str(exc), EXIT_CONFIG)
        except (OSError, SQLAlchemyError) as exc:
            return _fail(_database_problem(settings, exc), EXIT_CONFIG)
    if args.command == "status":
        try:
            print("\n".join(asyncio.run(_status(settings)).lines()))
        except (OSError, SQLAlchemyError) as exc:
            return _fail(_database_problem(settings, exc), EXIT_CONFIG)
        return 0
    return run(settings, getattr(args, "role", "all"))


def database_task(settings: Settings, args: argparse.Namespace) -> int:
    """`db upgrade`, `db revision`, `db backup PATH`, `db copy SRC DST`."""
    from bot import ops

    if args.db_command == "upgrade":
        asyncio.run(_upgrade(settings))
        print("database is up to date")
    elif args.db_command == "backup":
        print(f"backed up to {ops.backup_sqlite(settings.database_url, args.path)}")
    elif args.db_command == "copy":
        copied = asyncio.run(ops.copy_database(args.source, args.target))
        print(", ".join(f"{table} {count}" for table, count in copied.items()))
    else:
        engine = create_engine(settings.database_url)
        asyncio.run(migrate.make_revision(engine, args.message))
    return 0


async def _status(settings: Settings) -> ops.Status:
    from bot import ops

    engine = create_engine(settings.database_url)
    try:
        return await ops.status(engine)
    finally:
        await engine.dispose()


if __name__ == "__main__":
    sys.exit(main())
