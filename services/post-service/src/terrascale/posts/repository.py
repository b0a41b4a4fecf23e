"""All SQL of the Post Service."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import delete, func, literal_column, select, tuple_, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.engine import CursorResult
from sqlalchemy.ext.asyncio import AsyncSession

from terrascale.common.events import Envelope, EventData, record_event
from terrascale.common.sharding import OWNERSHIP, logical_shard_sql
from terrascale.posts.config import PostSettings
from terrascale.posts.models import KnownUser, Post, PostIdempotencyKey


class PostRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def claim_idempotency_key(
        self, *, author_id: int, key: str, request_hash: bytes, shard: int, ttl: timedelta
    ) -> int | None:
        """Reserve ``key`` for a new post and return the id that post must get; None when the
        key is taken. A concurrent claim of the same key waits here on the primary key until the
        first one commits (then gets None) or rolls back (then wins). A key older than ``ttl``
        is taken over as if it were new."""
        statement = pg_insert(PostIdempotencyKey).values(
            author_id=author_id, key=key, request_hash=request_hash, post_id=func.next_id(shard)
        )
        statement = statement.on_conflict_do_update(
            index_elements=[PostIdempotencyKey.author_id, PostIdempotencyKey.key],
            set_={
                "request_hash": statement.excluded.request_hash,
                "post_id": statement.excluded.post_id,
                "created_at": func.now(),
            },
            where=PostIdempotencyKey.created_at < func.now() - ttl,
        ).returning(PostIdempotencyKey.post_id)
        return (await self.session.scalars(statement)).one_or_none()

    async def get_by_idempotency_key(
        self, *, author_id: int, key: str, ttl: timedelta | None = None
    ) -> tuple[bytes, Post] | None:
        """The request digest stored with ``key`` and the post it created (deleted or not);
        with ``ttl``, only if the key is younger than that."""
        statement = (
            select(PostIdempotencyKey.request_hash, Post)
            .join(Post, Post.id == PostIdempotencyKey.post_id)
            .where(PostIdempotencyKey.author_id == author_id, PostIdempotencyKey.key == key)
        )
        if ttl is not None:
            statement = statement.where(PostIdempotencyKey.created_at >= func.now() - ttl)
        row = (await self.session.execute(statement)).one_or_none()
        return None if row is None else (row[0], row[1])

    async def purge_idempotency_keys(self, *, before: datetime, limit: int = 1000) -> int:
        """Delete up to ``limit`` keys made before ``before``, of the shards this database owns.
        Share-locking their ownership rows is the writers' fence: a shard under a move is
        waited for and then left to its new owner, so the move's checksums never see a purge."""
        owned = (
            await self.session.scalars(
                select(OWNERSHIP.c.shard).order_by(OWNERSHIP.c.shard).with_for_update(read=True)
            )
        ).all()
        oldest = (
            select(PostIdempotencyKey.author_id, PostIdempotencyKey.key)
            .where(
                PostIdempotencyKey.created_at < before,
                literal_column(logical_shard_sql("author_id")).in_(owned),
            )
            .limit(limit)
        )
        result = await self.session.execute(
            delete(PostIdempotencyKey).where(
                tuple_(PostIdempotencyKey.author_id, PostIdempotencyKey.key).in_(oldest)
            )
        )
        return cast(CursorResult[Any], result).rowcount

    async def insert(
        self,
        *,
        post_id: int | None,
        shard: int,
        author_id: int,
        text: str,
        reply_to: int | None,
        mentions: list[dict[str, Any]],
        hashtags: list[str],
        urls: list[str],
    ) -> Post:
        """Insert a post with ``post_id``, or with an id minted now on ``shard``."""
        statement = (
            pg_insert(Post)
            .values(
                id=func.next_id(shard) if post_id is None else post_id,
                author_id=author_id,
                text=text,
                reply_to=reply_to,
                mentions=mentions,
                hashtags=hashtags,
                urls=urls,
            )
            .returning(Post)
        )
        return (await self.session.scalars(statement)).one()

    async def visible_author(self, post_id: int) -> int | None:
        """The author of the post, or None if there is no such post or it was deleted."""
        statement = select(Post.author_id).where(Post.id == post_id, Post.deleted_at.is_(None))
        return await self.session.scalar(statement)

    async def get(self, post_id: int) -> Post | None:
        """The post, deleted or not."""
        return (await self.session.scalars(select(Post).where(Post.id == post_id))).one_or_none()

    async def get_many(self, post_ids: Sequence[int]) -> list[Post]:
        """The posts that exist among ``post_ids``, deleted ones included, in no order."""
        return list(await self.session.scalars(select(Post).where(Post.id.in_(post_ids))))

    async def soft_delete(self, *, post_id: int, author_id: int) -> Post | None:
        """Mark the post deleted if ``author_id`` wrote it and it is not deleted yet."""
        statement = (
            update(Post)
            .where(Post.id == post_id, Post.author_id == author_id, Post.deleted_at.is_(None))
            .values(deleted_at=func.now(), version=Post.version + 1)
            .returning(Post)
            .execution_options(synchronize_session=False)
        )
        return (await self.session.scalars(statement)).one_or_none()

    async def timeline(
        self,
        *,
        author_id: int,
        limit: int,
        max_id: int | None = None,
        since_id: int | None = None,
        min_id: int | None = None,
    ) -> list[Post]:
        """The author's visible posts, newest first: older than ``max_id``, and either the newest
        ones above ``since_id`` or the ones just above ``min_id``. One range scan of
        ``ix_post_author_id_id`` either way."""
        statement = select(Post).where(Post.author_id == author_id, Post.deleted_at.is_(None))
        if max_id is not None:
            statement = statement.where(Post.id < max_id)
        if min_id is not None:
            ascending = statement.where(Post.id > min_id).order_by(Post.id.asc()).limit(limit)
            return list(reversed(list(await self.session.scalars(ascending))))
        if since_id is not None:
            statement = statement.where(Post.id > since_id)
        statement = statement.order_by(Post.id.desc()).limit(limit)
        return list(await self.session.scalars(statement))

    async def record(self, event: EventData) -> None:
        """Queue an event in this transaction's outbox: it is published only if this commits."""
        await record_event(self.session, Envelope.wrap(event, source=PostSettings.service_name))


class KnownUserRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, *, user_id: int, username: str) -> bool:
        """Remember a user; False when the id or the name (in any case) is known already."""
        statement = (
            pg_insert(KnownUser)
            .values(id=user_id, username=username, username_lower=username.lower())
            .on_conflict_do_nothing()
            .returning(KnownUser.id)
        )
        return (await self.session.scalar(statement)) is not None

    async def find_by_usernames(self, usernames: Sequence[str]) -> list[KnownUser]:
        """The known users among ``usernames``, whatever their letter case."""
        lowered = sorted({username.lower() for username in usernames})
        statement = select(KnownUser).where(KnownUser.username_lower.in_(lowered))
        return list(await self.session.scalars(statement))
