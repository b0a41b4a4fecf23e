"""Tables owned by the Graph Service.

Every follow is stored twice: ``following_edge`` is owned by the follower and ``follower_edge``
by the followee, so each list is one range scan of its owner's rows (and, once sharded, each row
lives on its owner's shard). Both are written in one transaction. No foreign keys: the owner's
shard does not hold the other user, and users come from another service.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, CheckConstraint, DateTime, Index, String, func
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from terrascale.common.db import new_metadata
from terrascale.common.events import define_outbox_tables
from terrascale.common.resharding import ShardedTable
from terrascale.common.sharding import define_ownership_table


class Base(DeclarativeBase):
    """The declarative base of this service's tables."""

    metadata = new_metadata()


class FollowingEdge(Base):
    """``follower_id`` follows ``followee_id``: the follower's "following" list, on the
    follower's shard. The truth: a follow exists when this row does."""

    __tablename__ = "following_edge"

    follower_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    followee_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())

    __table_args__ = (
        # Covers the newest-first page query, so it is an index-only range scan.
        Index("ix_following_edge_recent", follower_id, created_at.desc(), followee_id.desc()),
    )


class FollowerEdge(Base):
    """``follower_id`` follows ``followee_id``: the followee's "followers" list, on the
    followee's shard, kept in step with ``FollowingEdge`` (``service.mirror_follows``)."""

    __tablename__ = "follower_edge"

    followee_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    follower_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        Index("ix_follower_edge_recent", followee_id, created_at.desc(), follower_id.desc()),
    )


class FollowCount(Base):
    """Counters on the user's shard, each kept in the transaction that inserts or deletes an
    edge of that user's (``following`` with the follower's row, ``followers`` with the
    followee's), so they stay exact without counting rows on every read."""

    __tablename__ = "follow_count"

    user_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    followers: Mapped[int] = mapped_column(BigInteger, server_default="0")
    following: Mapped[int] = mapped_column(BigInteger, server_default="0")

    __table_args__ = (
        CheckConstraint("followers >= 0", name="followers_not_negative"),
        CheckConstraint("following >= 0", name="following_not_negative"),
    )


class KnownUser(Base):
    """Projection of the User Service's accounts, filled from ``user.created`` events (and from
    a direct lookup when a user is followed before the event arrives)."""

    __tablename__ = "known_user"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    username: Mapped[str] = mapped_column(String(30))
    # The account's creation time (from its id), whichever way the row arrived.
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


# The transactional outbox (events this service emits) and the inbox of processed events.
define_outbox_tables(Base.metadata)

# The logical shards this database owns (every shard database has the table).
define_ownership_table(Base.metadata)

# What a shard move copies: every row lives on its owner's shard. ``known_user`` is not sharded:
# it lives in the service's own database.
SHARDED_TABLES = (
    ShardedTable(FollowingEdge.__table__, "follower_id"),  # pyright: ignore[reportArgumentType]
    ShardedTable(FollowerEdge.__table__, "followee_id"),  # pyright: ignore[reportArgumentType]
    ShardedTable(FollowCount.__table__, "user_id"),  # pyright: ignore[reportArgumentType]
)
