"""Re-encrypting stored data under the current key, batch by batch (key rotation).

Each batch is its own short transaction, so the bot keeps reading and writing while it runs;
every row stays readable throughout, since the keyring holds the old keys as well as the new.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.crypto import Keyring
from bot.db.models import CheckIn, CheckInDraft
from bot.services.checkins import aad_for

BATCH = 500


async def reencrypt_all(
    sessions: async_sessionmaker[AsyncSession], keyring: Callable[[], Keyring]
) -> int:
    """Move every check-in and draft onto the current key; return how many rows changed."""
    changed = 0
    while True:
        moved = await _checkins_batch(sessions, keyring()) + await _drafts_batch(
            sessions, keyring()
        )
        changed += moved
        if not moved:
            return changed


async def _checkins_batch(sessions: async_sessionmaker[AsyncSession], keys: Keyring) -> int:
    async with sessions() as session, session.begin():
        rows = (
            await session.execute(
                select(CheckIn.id, CheckIn.user_id, CheckIn.payload)
                .where(CheckIn.key_id != keys.current_id)
                .limit(BATCH)
            )
        ).all()
        for row_id, user_id, payload in rows:
            token = keys.reencrypt(payload, aad=aad_for(user_id))
            await session.execute(
                update(CheckIn)
                .where(CheckIn.id == row_id)
                .values(payload=token, key_id=keys.key_id(token))
            )
    return len(rows)


async def _drafts_batch(sessions: async_sessionmaker[AsyncSession], keys: Keyring) -> int:
    async with sessions() as session, session.begin():
        rows = (
            await session.execute(
                select(CheckInDraft.user_id, CheckInDraft.payload)
                .where(CheckInDraft.key_id != keys.current_id)
                .limit(BATCH)
            )
        ).all()
        for user_id, payload in rows:
            token = keys.reencrypt(payload, aad=aad_for(user_id, "draft"))
            await session.execute(
                update(CheckInDraft)
                .where(CheckInDraft.user_id == user_id)
                .values(payload=token, key_id=keys.key_id(token))
            )
    return len(rows)
