"""Tables owned by the Timeline Service: its own copies of the follow graph and of who wrote
which post, kept from events. With them a timeline can be rebuilt, and fanned out, without
asking another service; the Redis timelines are a cache of what these tables imply.

No foreign keys: the rows come from other services' events, in no guaranteed order.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Boolean, Index, false, text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from terrascale.common.db import new_metadata


class Base(DeclarativeBase):
    """The declarative base of this service's tables."""

    metadata = new_metadata()


class FollowEdge(Base):
    """``follower_id`` follows ``followee_id``, as the last follow event said."""

    __tablename__ = "follow_edge"

    follower_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    followee_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)

    __table_args__ = (
        # Fan-out reads an author's followers in follower order, in batches.
        Index("ix_follow_edge_followee", followee_id, follower_id),
    )


class KnownPost(Base):
    """A post this service has seen, and how it reached timelines.

    ``fanned_out`` is decided once, when the post is first seen, from the author's follower
    count then: a post that was not fanned out is merged in at read time for as long as it
    exists, so an author crossing the celebrity threshold (either way) loses no post. A deleted
    post stays as a tombstone so a late redelivery of its ``post.created`` cannot revive it.
    """

    __tablename__ = "known_post"

    post_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    author_id: Mapped[int] = mapped_column(BigInteger)
    fanned_out: Mapped[bool] = mapped_column(Boolean)
    deleted: Mapped[bool] = mapped_column(Boolean, server_default=false())

    __table_args__ = (
        # Rebuilds and follow merges: an author's newest posts that went to timelines.
        Index(
            "ix_known_post_fanned_out",
            author_id,
            post_id.desc(),
            postgresql_where=text("fanned_out AND NOT deleted"),
        ),
        # Read-time merge: an author's newest posts that did not.
        Index(
            "ix_known_post_merged",
            author_id,
            post_id.desc(),
            postgresql_where=text("NOT fanned_out AND NOT deleted"),
        ),
    )
