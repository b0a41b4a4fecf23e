"""All SQL of the User Service."""

from __future__ import annotations

from sqlalchemy import func
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from terrascale.users.models import UserAccount


class UserRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def insert_unless_taken(self, *, username: str, shard: int) -> UserAccount | None:
        """Insert a user; None when the username is taken in any case. The unique index on
        ``lower(username)`` makes this race-free: of concurrent inserts exactly one wins."""
        statement = (
            pg_insert(UserAccount)
            .values(id=func.next_id(shard), username=username)
            .on_conflict_do_nothing(index_elements=[func.lower(UserAccount.username)])
            .returning(UserAccount)
        )
        return (await self.session.scalars(statement)).one_or_none()

    async def get(self, user_id: int) -> UserAccount | None:
        return await self.session.get(UserAccount, user_id)
