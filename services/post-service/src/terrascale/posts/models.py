"""Tables owned by the Post Service."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    DateTime,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    func,
)
from sqlalchemy import text as sql_text
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from terrascale.common.db import new_metadata
from terrascale.common.events import define_outbox_tables
from terrascale.common.resharding import ShardedTable
from terrascale.common.sharding import define_ownership_table

MAX_TEXT_LENGTH = 500


class Base(DeclarativeBase):
    """The declarative base of this service's tables."""

    metadata = new_metadata()


class Post(Base):
    """A post. Its id is minted on its author's shard, so a post lives with its author; it is
    never removed, only marked deleted, so replies and ids held elsewhere stay meaningful."""

    __tablename__ = "post"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    author_id: Mapped[int] = mapped_column(BigInteger)
    text: Mapped[str] = mapped_column(Text)
    # No foreign key: with posts sharded by author, the parent may live in another database.
    reply_to: Mapped[int | None] = mapped_column(BigInteger)
    # [{"user_id": int, "username": str}], resolved when the post was written.
    mentions: Mapped[list[dict[str, Any]]] = mapped_column(
        JSONB, server_default=sql_text("'[]'::jsonb")
    )
    hashtags: Mapped[list[str]] = mapped_column(ARRAY(Text), server_default=sql_text("'{}'"))
    urls: Mapped[list[str]] = mapped_column(ARRAY(Text), server_default=sql_text("'{}'"))
    # Bumped by the delete; the cache refuses to replace a newer version with an older.
    version: Mapped[int] = mapped_column(Integer, server_default="1")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    deleted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        # PostgreSQL counts characters (code points), the unit of the 500 limit.
        CheckConstraint(f"char_length(text) BETWEEN 1 AND {MAX_TEXT_LENGTH}", name="text_length"),
        # A user's timeline, newest first, is one range scan of this index.
        Index(
            "ix_post_author_id_id",
            author_id,
            id.desc(),
            postgresql_where=deleted_at.is_(None),
        ),
    )


class PostIdempotencyKey(Base):
    """An ``Idempotency-Key`` a client sent with a new post: the post it created and a digest
    of the request, so a retry gets that post back and a different request with the key is
    refused. The primary key makes concurrent retries wait for the first one to commit."""

    __tablename__ = "post_idempotency_key"

    author_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    request_hash: Mapped[bytes] = mapped_column(LargeBinary(32))
    post_id: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), index=True
    )


class KnownUser(Base):
    """This service's copy of usernames, filled from ``user.created`` events, to resolve
    mentions without asking the User Service on every post. Not sharded: it lives in the
    service's own database."""

    __tablename__ = "known_user"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    username: Mapped[str] = mapped_column(String(30))
    username_lower: Mapped[str] = mapped_column(String(30), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


# The transactional outbox (events this service emits) and the inbox of processed events.
define_outbox_tables(Base.metadata)
# The logical shards this database owns (every shard database has the table).
define_ownership_table(Base.metadata)

# What a shard move copies: a post and its idempotency key live on the author's shard. The outbox
# stays where it was written; its relay publishes it from there.
SHARDED_TABLES = (
    ShardedTable(Post.__table__, "author_id"),  # pyright: ignore[reportArgumentType]
    ShardedTable(PostIdempotencyKey.__table__, "author_id"),  # pyright: ignore[reportArgumentType]
)
