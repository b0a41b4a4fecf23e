"""All SQL of the User Service."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from terrascale.common.events import Envelope, EventData, record_event
from terrascale.users.config import UserSettings
from terrascale.users.models import RefreshToken, UserAccount


class UserRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def insert_unless_taken(
        self, *, username: str, shard: int, password_hash: str | None
    ) -> UserAccount | None:
        """Insert a user; None when the username is taken in any case. The unique index on
        ``lower(username)`` makes this race-free: of concurrent inserts exactly one wins."""
        statement = (
            pg_insert(UserAccount)
            .values(id=func.next_id(shard), username=username, password_hash=password_hash)
            .on_conflict_do_nothing(index_elements=[func.lower(UserAccount.username)])
            .returning(UserAccount)
        )
        return (await self.session.scalars(statement)).one_or_none()

    async def get(self, user_id: int) -> UserAccount | None:
        return await self.session.get(UserAccount, user_id)

    async def get_many(self, user_ids: Sequence[int]) -> list[UserAccount]:
        statement = select(UserAccount).where(UserAccount.id.in_(user_ids))
        return list(await self.session.scalars(statement))

    async def get_by_username(self, username: str) -> UserAccount | None:
        statement = select(UserAccount).where(func.lower(UserAccount.username) == username.lower())
        return (await self.session.scalars(statement)).one_or_none()

    async def update_profile(self, user_id: int, changes: dict[str, Any]) -> UserAccount | None:
        statement = (
            update(UserAccount)
            .where(UserAccount.id == user_id)
            .values(**changes, version=UserAccount.version + 1, updated_at=func.now())
            .returning(UserAccount)
            .execution_options(synchronize_session=False)
        )
        return (await self.session.scalars(statement)).one_or_none()

    async def store_replica(self, *, user_id: int, username: str) -> bool:
        """Keep a user homed in another region (no password: they sign in at home). False when
        the id is known, or the name is taken here (two regions accepted it at once)."""
        statement = (
            pg_insert(UserAccount)
            .values(id=user_id, username=username, password_hash=None)
            .on_conflict_do_nothing()
            .returning(UserAccount.id)
        )
        return (await self.session.scalar(statement)) is not None

    async def update_replica(
        self, user_id: int, *, display_name: str | None, bio: str | None
    ) -> bool:
        """Apply a profile change made in the user's home region; False if the user is unknown."""
        return (
            await self.update_profile(user_id, {"display_name": display_name, "bio": bio})
            is not None
        )

    async def record(self, event: EventData) -> None:
        """Queue an event in this transaction's outbox: it is published only if this commits."""
        await record_event(self.session, Envelope.wrap(event, source=UserSettings.service_name))


class RefreshTokenRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(
        self, *, digest: bytes, user_id: int, family_id: uuid.UUID, expires_at: datetime
    ) -> None:
        self.session.add(
            RefreshToken(
                token_hash=digest, user_id=user_id, family_id=family_id, expires_at=expires_at
            )
        )
        await self.session.flush()

    async def get_for_update(self, digest: bytes) -> RefreshToken | None:
        """Locks the row, so two concurrent refreshes with one token cannot both succeed."""
        statement = select(RefreshToken).where(RefreshToken.token_hash == digest).with_for_update()
        return (await self.session.scalars(statement)).one_or_none()

    async def revoke(self, digest: bytes) -> None:
        await self.session.execute(
            update(RefreshToken)
            .where(RefreshToken.token_hash == digest, RefreshToken.revoked_at.is_(None))
            .values(revoked_at=func.now())
        )

    async def revoke_family(self, family_id: uuid.UUID) -> None:
        await self.session.execute(
            update(RefreshToken)
            .where(RefreshToken.family_id == family_id, RefreshToken.revoked_at.is_(None))
            .values(revoked_at=func.now())
        )
