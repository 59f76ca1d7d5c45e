"""Alembic, driven from code: start-up and `python -m bot db upgrade` share this.

Importing Alembic takes about 0.2 s (it brings Mako, Pygments and the DDL of every dialect),
and a database that is already at the newest revision needs none of it. So `upgrade` first
reads the revision ids written in the versions folder and the `alembic_version` table, and
hands over to Alembic only when they differ, or when anything there is unusual (branches,
dependencies, a file it cannot read): then Alembic decides, as it always did.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
VERSIONS_DIR = MIGRATIONS_DIR / "versions"
VERSION_TABLE = "alembic_version"  # Alembic's default, which env.py keeps


def alembic_config() -> Config:
    """An Alembic config that needs no alembic.ini."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return config


def _upgrade(connection: Connection, config: Config, revision: str) -> None:
    from alembic import command

    config.attributes["connection"] = connection
    command.upgrade(config, revision)


def _revision(connection: Connection, config: Config, message: str) -> None:
    from alembic import command

    config.attributes["connection"] = connection
    command.revision(config, message=message, autogenerate=True)


def _current(connection: Connection) -> str | None:
    from alembic.runtime.migration import MigrationContext

    return MigrationContext.configure(connection).get_current_revision()


def _module_constants(source: str, names: Iterable[str]) -> dict[str, object] | None:
    """The literal values of the module-level assignments to `names`; None if one is not."""
    wanted = set(names)
    found: dict[str, object] = {}
    for node in ast.parse(source).body:
        targets: list[ast.expr]
        if isinstance(node, ast.AnnAssign) and node.value is not None:
            targets, value = [node.target], node.value
        elif isinstance(node, ast.Assign):
            targets, value = node.targets, node.value
        else:
            continue
        for target in targets:
            if isinstance(target, ast.Name) and target.id in wanted:
                try:
                    found[target.id] = ast.literal_eval(value)
                except (ValueError, TypeError):
                    return None
    return found


def script_heads(versions: Path = VERSIONS_DIR) -> frozenset[str] | None:
    """The head revision ids of the migration scripts, read without importing Alembic.

    None when the answer is better left to Alembic: no scripts, a script without a plain
    revision id, branch labels or dependencies.
    """
    parents: dict[str, tuple[str, ...]] = {}
    # The files Alembic reads: *.py in the folder, except __init__.py and editor backups.
    for path in sorted(versions.glob("*.py")):
        if path.name.startswith(("__init__", ".#")):
            continue
        try:
            constants = _module_constants(
                path.read_text(encoding="utf-8"),
                ("revision", "down_revision", "branch_labels", "depends_on"),
            )
        except (OSError, SyntaxError, ValueError):
            return None
        if constants is None:
            return None
        revision, down = constants.get("revision"), constants.get("down_revision")
        if constants.get("branch_labels") is not None or constants.get("depends_on") is not None:
            return None
        if not isinstance(revision, str) or revision in parents:
            return None
        if down is None:
            parents[revision] = ()
        elif isinstance(down, str):
            parents[revision] = (down,)
        elif isinstance(down, tuple | list) and all(isinstance(d, str) for d in down):
            parents[revision] = tuple(down)
        else:
            return None
    if not parents:
        return None
    referenced = {parent for downs in parents.values() for parent in downs}
    if not referenced <= parents.keys():
        return None
    return frozenset(parents.keys() - referenced)


def _stored_revisions(connection: Connection) -> frozenset[str]:
    """The revisions the alembic_version table records; empty for a new database."""
    if not inspect(connection).has_table(VERSION_TABLE):
        return frozenset()
    rows = connection.execute(text(f"SELECT version_num FROM {VERSION_TABLE}"))
    return frozenset(str(value) for value in rows.scalars())


async def is_at_head(engine: AsyncEngine) -> bool:
    """Whether the database is at the single newest revision; False when unsure."""
    heads = script_heads()
    if heads is None or len(heads) != 1:
        return False
    async with engine.connect() as connection:
        stored = await connection.run_sync(_stored_revisions)
    return stored == heads


async def upgrade(engine: AsyncEngine, revision: str = "head") -> None:
    """Bring the schema up to `revision` (the newest by default)."""
    if revision == "head" and await is_at_head(engine):
        return
    async with engine.begin() as connection:
        await connection.run_sync(_upgrade, alembic_config(), revision)


async def make_revision(engine: AsyncEngine, message: str) -> None:
    """Autogenerate a new migration from the difference between models and database."""
    async with engine.begin() as connection:
        await connection.run_sync(_revision, alembic_config(), message)


async def current_revision(engine: AsyncEngine) -> str | None:
    """The revision the database is at, or None if it was never migrated."""
    async with engine.connect() as connection:
        return await connection.run_sync(_current)


def head_revision() -> str | None:
    """The newest revision the code knows."""
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config()).get_current_head()
