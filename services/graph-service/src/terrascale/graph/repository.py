"""All SQL of the Graph Service."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import (
    BigInteger,
    DateTime,
    Result,
    delete,
    exists,
    func,
    literal,
    select,
    tuple_,
    update,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from terrascale.common.events import Envelope, EventData, record_events
from terrascale.graph.config import GraphSettings
from terrascale.graph.models import FollowCount, FollowerEdge, FollowingEdge, KnownUser
from terrascale.graph.pagination import Position

TIMESTAMPTZ = DateTime(timezone=True)


class FollowRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    # The follower's side, on the follower's shard: the truth about who follows whom.

    async def insert(self, *, follower_id: int, followee_id: int) -> bool:
        """Store the follow; False (and nothing written) when it already existed. Of concurrent
        identical follows the primary key lets exactly one in."""
        created_at = await self.session.scalar(
            pg_insert(FollowingEdge)
            .values(follower_id=follower_id, followee_id=followee_id)
            .on_conflict_do_nothing(index_elements=["follower_id", "followee_id"])
            .returning(FollowingEdge.created_at)
        )
        return created_at is not None

    async def insert_many(self, *, follower_id: int, followee_ids: Sequence[int]) -> list[int]:
        """``insert`` for several followees in one statement; returns the followees whose
        follow is new, in the order given."""
        new_edges = await self.session.scalars(
            pg_insert(FollowingEdge)
            .values([{"follower_id": follower_id, "followee_id": f} for f in followee_ids])
            .on_conflict_do_nothing(index_elements=["follower_id", "followee_id"])
            .returning(FollowingEdge.followee_id)
        )
        created = set(new_edges)
        return [followee_id for followee_id in followee_ids if followee_id in created]

    async def delete(self, *, follower_id: int, followee_id: int) -> bool:
        """Remove the follow; False when there was none."""
        deleted = await self.session.scalar(
            delete(FollowingEdge)
            .where(
                FollowingEdge.follower_id == follower_id, FollowingEdge.followee_id == followee_id
            )
            .returning(FollowingEdge.created_at)
        )
        return deleted is not None

    async def followed_since(self, *, follower_id: int, followee_id: int) -> datetime | None:
        """When the follow began, or None when there is none."""
        return await self.session.scalar(
            select(FollowingEdge.created_at).where(
                FollowingEdge.follower_id == follower_id, FollowingEdge.followee_id == followee_id
            )
        )

    # The followee's side, on the followee's shard: a copy of the truth, kept in step.

    async def lock_pair(self, *, follower_id: int, followee_id: int) -> None:
        """Until this transaction ends, no other one updates this pair's followee side: each
        reads the truth after this lock, so the last to run leaves the latest truth."""
        await self.session.execute(
            select(
                func.pg_advisory_xact_lock(func.hashtextextended(f"{follower_id}>{followee_id}", 0))
            )
        )

    async def add_follower(self, *, followee_id: int, follower_id: int, since: datetime) -> bool:
        inserted = await self.session.scalar(
            pg_insert(FollowerEdge)
            .values(followee_id=followee_id, follower_id=follower_id, created_at=since)
            .on_conflict_do_nothing(index_elements=["followee_id", "follower_id"])
            .returning(FollowerEdge.follower_id)
        )
        return inserted is not None

    async def remove_follower(self, *, followee_id: int, follower_id: int) -> bool:
        deleted = await self.session.scalar(
            delete(FollowerEdge)
            .where(FollowerEdge.followee_id == followee_id, FollowerEdge.follower_id == follower_id)
            .returning(FollowerEdge.follower_id)
        )
        return deleted is not None

    async def followers_among(self, user_id: int, candidates: Sequence[int]) -> set[int]:
        """Which of ``candidates`` follow ``user_id`` (rows ``user_id`` owns)."""
        statement = select(FollowerEdge.follower_id).where(
            FollowerEdge.followee_id == user_id, FollowerEdge.follower_id.in_(candidates)
        )
        return set(await self.session.scalars(statement))

    async def count(self, user_id: int, *, followers: int = 0, following: int = 0) -> None:
        """Adjust one user's counters (only for edges really inserted or deleted). Each
        transaction changes one counter row, so none waits on another's in a cycle."""
        if followers < 0 or following < 0:
            # A counted edge existed, so the row does; an upsert would check a negative row first.
            await self.session.execute(
                update(FollowCount)
                .where(FollowCount.user_id == user_id)
                .values(
                    followers=FollowCount.followers + followers,
                    following=FollowCount.following + following,
                )
            )
            return
        statement = pg_insert(FollowCount).values(
            user_id=user_id, followers=followers, following=following
        )
        await self.session.execute(  # the user's first edge creates the row
            statement.on_conflict_do_update(
                index_elements=["user_id"],
                set_={
                    "followers": FollowCount.followers + statement.excluded.followers,
                    "following": FollowCount.following + statement.excluded.following,
                },
            )
        )

    async def relationship(self, *, user_id: int, other_id: int) -> tuple[bool, bool]:
        """(user follows other, other follows user), both read from rows ``user_id`` owns."""
        statement = select(
            exists().where(
                FollowingEdge.follower_id == user_id, FollowingEdge.followee_id == other_id
            ),
            exists().where(
                FollowerEdge.followee_id == user_id, FollowerEdge.follower_id == other_id
            ),
        )
        following, followed_by = (await self.session.execute(statement)).one()
        return bool(following), bool(followed_by)

    async def following_page(
        self, user_id: int, *, after: Position | None, limit: int
    ) -> list[Position]:
        """Whom ``user_id`` follows, newest first, strictly after ``after``."""
        statement = select(FollowingEdge.created_at, FollowingEdge.followee_id).where(
            FollowingEdge.follower_id == user_id
        )
        if after is not None:
            statement = statement.where(
                tuple_(FollowingEdge.created_at, FollowingEdge.followee_id)
                < tuple_(literal(after.created_at, TIMESTAMPTZ), literal(after.user_id, BigInteger))
            )
        statement = statement.order_by(
            FollowingEdge.created_at.desc(), FollowingEdge.followee_id.desc()
        ).limit(limit)
        return _positions(await self.session.execute(statement))

    async def followers_page(
        self, user_id: int, *, after: Position | None, limit: int
    ) -> list[Position]:
        """Who follows ``user_id``, newest first, strictly after ``after``."""
        statement = select(FollowerEdge.created_at, FollowerEdge.follower_id).where(
            FollowerEdge.followee_id == user_id
        )
        if after is not None:
            statement = statement.where(
                tuple_(FollowerEdge.created_at, FollowerEdge.follower_id)
                < tuple_(literal(after.created_at, TIMESTAMPTZ), literal(after.user_id, BigInteger))
            )
        statement = statement.order_by(
            FollowerEdge.created_at.desc(), FollowerEdge.follower_id.desc()
        ).limit(limit)
        return _positions(await self.session.execute(statement))

    async def counts(self, user_id: int) -> tuple[int, int]:
        """(followers, following); zeros for a user nobody has followed and who follows nobody."""
        row = (
            await self.session.execute(
                select(FollowCount.followers, FollowCount.following).where(
                    FollowCount.user_id == user_id
                )
            )
        ).one_or_none()
        return (0, 0) if row is None else (row.followers, row.following)

    async def record(self, *events: EventData) -> None:
        """Queue events in this transaction's outbox (one statement): they are published only if
        this commits, in this order."""
        source = GraphSettings.service_name
        await record_events(self.session, [Envelope.wrap(event, source=source) for event in events])


class KnownUserRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def exists(self, user_id: int) -> bool:
        return bool(await self.session.scalar(select(exists().where(KnownUser.id == user_id))))

    async def missing(self, user_ids: Sequence[int]) -> list[int]:
        """The ids the projection does not know, in id order."""
        known = set(
            await self.session.scalars(select(KnownUser.id).where(KnownUser.id.in_(user_ids)))
        )
        return sorted(set(user_ids) - known)

    async def add(self, *, user_id: int, username: str, created_at: datetime) -> None:
        """Idempotent: the event and a direct lookup may both bring the same user."""
        await self.session.execute(
            pg_insert(KnownUser)
            .values(id=user_id, username=username, created_at=created_at)
            .on_conflict_do_nothing(index_elements=["id"])
        )


def _positions(rows: Result[tuple[datetime, int]]) -> list[Position]:
    return [Position(created_at, user_id) for created_at, user_id in rows.tuples()]
