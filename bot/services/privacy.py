"""Data rights: export everything about a person, delete everything, purge what is too old.

Both export and deletion walk every mapped table that has a `user_id` column (plus `users`
itself), so a table added later is exported and deleted without anyone remembering to.
"""

from __future__ import annotations

import csv
import io
from datetime import date, datetime, time, timedelta
from typing import Any

from sqlalchemy import Table, delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.db.models import Base, CheckIn, Delivery, User
from bot.services import checkins
from bot.services.checkins import Cipher

DRAFT_TABLE = "checkin_drafts"


def user_tables() -> list[Table]:
    """Every table that holds rows keyed to a user, children before parents."""
    tables = [t for t in reversed(Base.metadata.sorted_tables) if "user_id" in t.c]
    return [*tables, User.__table__]


def _plain(value: Any) -> Any:
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, bytes):
        return None
    if hasattr(value, "value"):  # enums
        return value.value
    return value


def _row(table: Table, row: Any, cipher: Cipher, user_id: int) -> dict[str, Any]:
    data = {column: _plain(value) for column, value in row._mapping.items()}
    if "payload" in data:
        kind = "draft" if table.name == DRAFT_TABLE else "checkin"
        data.pop("payload")
        data.pop("key_id", None)
        decrypted = cipher.decrypt_json(
            row._mapping["payload"], aad=checkins.aad_for(user_id, kind)
        )
        data.update(decrypted if isinstance(decrypted, dict) else {})
    return data


async def export_user(session: AsyncSession, cipher: Cipher, user_id: int) -> dict[str, Any]:
    """Every row about this person in every table, decrypted, as plain JSON-ready values."""
    result: dict[str, Any] = {}
    for table in user_tables():
        column = table.c.id if table.name == User.__tablename__ else table.c.user_id
        rows = await session.execute(select(table).where(column == user_id))
        result[table.name] = [_row(table, row, cipher, user_id) for row in rows]
    user_rows = result.get(User.__tablename__) or [{}]
    result["consent"] = {"checkins_consented_at": user_rows[0].get("checkin_consent_at")}
    return result


CSV_FIELDS = ("date", "time_utc", "pain", "stress", "mood", "sleep", "note")


def checkins_csv(export: dict[str, Any]) -> str:
    """The check-ins of an export as CSV (one row per check-in)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(CSV_FIELDS)
    for row in export.get(CheckIn.__tablename__, []):
        writer.writerow(
            [
                row.get("local_date"),
                row.get("created_at"),
                *(row.get(field, "") for field in ("pain", "stress", "mood", "sleep", "note")),
            ]
        )
    return buffer.getvalue()


async def delete_user(session: AsyncSession, user_id: int) -> int:
    """Erase every row keyed to this person; return how many rows went."""
    removed = 0
    for table in user_tables():
        column = table.c.id if table.name == User.__tablename__ else table.c.user_id
        result = await session.execute(delete(table).where(column == user_id))
        removed += result.rowcount or 0  # type: ignore[attr-defined]
    return removed


async def delete_checkins(session: AsyncSession, user_id: int) -> int:
    """Erase this person's check-ins (and a draft), keeping everything else."""
    result = await session.execute(delete(CheckIn).where(CheckIn.user_id == user_id))
    await checkins.drop_draft(session, user_id)
    return result.rowcount or 0  # type: ignore[attr-defined]


async def purge_old(
    session: AsyncSession, now: datetime, checkin_days: int, delivery_days: int
) -> tuple[int, int]:
    """Delete check-ins and delivery records older than their retention periods."""
    old_checkins = await session.execute(
        delete(CheckIn).where(CheckIn.created_at < now - timedelta(days=checkin_days))
    )
    old_deliveries = await session.execute(
        delete(Delivery).where(Delivery.due_at < now - timedelta(days=delivery_days))
    )
    return (
        old_checkins.rowcount or 0,  # type: ignore[attr-defined]
        old_deliveries.rowcount or 0,  # type: ignore[attr-defined]
    )
