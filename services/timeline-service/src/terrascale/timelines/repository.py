"""SQL over this service's projections: the follow graph and the posts it has seen."""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from typing import Any, TypeVar

from sqlalchemy import (
    BigInteger,
    Integer,
    and_,
    any_,
    bindparam,
    delete,
    func,
    literal_column,
    select,
    union_all,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY, insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql import CompoundSelect, Select

from terrascale.timelines.models import FollowEdge, KnownPost
from terrascale.timelines.window import Window

T = TypeVar("T", bound=tuple[Any, ...])


class TimelineRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    # -- writes, each idempotent: events can arrive twice ------------------------------------

    async def add_follow(self, *, follower_id: int, followee_id: int) -> None:
        statement = insert(FollowEdge).values(follower_id=follower_id, followee_id=followee_id)
        await self.session.execute(statement.on_conflict_do_nothing())

    async def remove_follow(self, *, follower_id: int, followee_id: int) -> None:
        await self.session.execute(
            delete(FollowEdge).where(
                FollowEdge.follower_id == follower_id, FollowEdge.followee_id == followee_id
            )
        )

    async def remember_post(self, *, post_id: int, author_id: int, fan_out: bool) -> KnownPost:
        """The post as first seen: a redelivery gets the original decision back, and a
        tombstone stays one."""
        statement = insert(KnownPost).values(
            post_id=post_id, author_id=author_id, fanned_out=fan_out
        )
        await self.session.execute(statement.on_conflict_do_nothing())
        return (
            await self.session.scalars(select(KnownPost).where(KnownPost.post_id == post_id))
        ).one()

    async def forget_post(self, *, post_id: int, author_id: int) -> bool:
        """Tombstone the post; returns whether it had been fanned out (so it must be removed
        from timelines). A deletion seen first leaves a tombstone that was never fanned out."""
        fanned_out = await self.session.scalar(
            update(KnownPost)
            .where(KnownPost.post_id == post_id)
            .values(deleted=True)
            .returning(KnownPost.fanned_out)
        )
        if fanned_out is None:
            statement = insert(KnownPost).values(
                post_id=post_id, author_id=author_id, fanned_out=False, deleted=True
            )
            await self.session.execute(statement.on_conflict_do_nothing())
        return bool(fanned_out)

    # -- reads --------------------------------------------------------------------------------

    async def has_more_followers_than(self, author_id: int, threshold: int) -> bool:
        """Counts at most threshold + 1 rows, so a huge following costs no more than that."""
        capped = (
            select(literal_column("1"))
            .where(FollowEdge.followee_id == author_id)
            .limit(threshold + 1)
            .subquery()
        )
        return (
            await self.session.scalar(select(func.count()).select_from(capped)) or 0
        ) > threshold

    async def followers_after(self, author_id: int, *, after: int, limit: int) -> list[int]:
        """One batch of the author's followers, in id order, after follower ``after``."""
        statement = (
            select(FollowEdge.follower_id)
            .where(FollowEdge.followee_id == author_id, FollowEdge.follower_id > after)
            .order_by(FollowEdge.follower_id)
            .limit(limit)
        )
        return list(await self.session.scalars(statement))

    async def fanned_out_posts_of(self, author_id: int, *, limit: int) -> list[int]:
        """The author's newest posts that fan-out put into timelines."""
        statement = (
            select(KnownPost.post_id)
            .where(KnownPost.author_id == author_id, KnownPost.fanned_out, ~KnownPost.deleted)
            .order_by(KnownPost.post_id.desc())
            .limit(limit)
        )
        return list(await self.session.scalars(statement))

    async def home_posts(self, user_id: int, *, limit: int) -> list[int]:
        """What a rebuilt timeline holds: the newest fanned-out posts of everyone the user
        follows. Each followee contributes at most ``limit`` (a lateral index range scan), so
        the cost is bounded by followees x limit, not by how much they ever wrote."""
        followee = FollowEdge.__table__.alias("followee")
        per_author = (
            select(KnownPost.post_id)
            .where(
                KnownPost.author_id == followee.c.followee_id,
                KnownPost.fanned_out,
                ~KnownPost.deleted,
            )
            .order_by(KnownPost.post_id.desc())
            .limit(limit)
            .lateral()
        )
        statement = (
            select(per_author.c.post_id)
            .select_from(followee.join(per_author, literal_column("true")))
            .where(followee.c.follower_id == user_id)
            .order_by(per_author.c.post_id.desc())
            .limit(limit)
        )
        return list(await self.session.scalars(statement))

    async def home_check(
        self, user_id: int, stored: Sequence[int], window: Window
    ) -> dict[int, int]:
        """In one round trip, post id -> author id of what belongs in the window besides the
        user's stored timeline: which of the ``stored`` posts still belong in it (known, not
        deleted, by someone they follow: catches what a race between fan-out and an unfollow
        left) and the window's posts by followees that were not fanned out (celebrities)."""
        statement = _home_check(*_shape(window))
        parameters = {"user_id": user_id, "stored": list(stored), **_bounds(window)}
        return dict((await self.session.execute(statement, parameters)).tuples().all())

    async def home_page(self, user_id: int, window: Window) -> dict[int, int]:
        """The window straight from the projections, every post of every followee, newest
        first, post id -> author id: the answer when Redis is unavailable."""
        statement = _home_page(*_shape(window))
        parameters = {"user_id": user_id, **_bounds(window)}
        rows = (await self.session.execute(statement, parameters)).tuples().all()
        return dict(sorted(rows, reverse=True))


# The reads of every page are built once per window shape (which bounds it has, which end it
# keeps), their values bound at execution: building and caching a statement per request cost
# more than running it.
_FOLLOWED = and_(
    FollowEdge.followee_id == KnownPost.author_id,
    FollowEdge.follower_id == bindparam("user_id", type_=BigInteger),
)


def _shape(window: Window) -> tuple[bool, bool, bool]:
    return window.older_than is not None, window.newer_than is not None, window.from_oldest


def _bounds(window: Window) -> dict[str, int]:
    bounds = {"limit": window.limit}
    if window.older_than is not None:
        bounds["older_than"] = window.older_than
    if window.newer_than is not None:
        bounds["newer_than"] = window.newer_than
    return bounds


def _within(statement: Select[T], older: bool, newer: bool, from_oldest: bool) -> Select[T]:
    if older:
        statement = statement.where(KnownPost.post_id < bindparam("older_than", type_=BigInteger))
    if newer:
        statement = statement.where(KnownPost.post_id > bindparam("newer_than", type_=BigInteger))
    order = KnownPost.post_id.asc() if from_oldest else KnownPost.post_id.desc()
    return statement.order_by(order).limit(bindparam("limit", type_=Integer))


@cache
def _home_check(older: bool, newer: bool, from_oldest: bool) -> CompoundSelect[tuple[int, int]]:
    merged = _within(
        select(KnownPost.post_id, KnownPost.author_id)
        .join(FollowEdge, _FOLLOWED)
        .where(~KnownPost.fanned_out, ~KnownPost.deleted),
        older,
        newer,
        from_oldest,
    ).subquery()
    still_there = (
        select(KnownPost.post_id, KnownPost.author_id)
        .join(FollowEdge, _FOLLOWED)
        .where(
            KnownPost.post_id == any_(bindparam("stored", type_=ARRAY(BigInteger))),
            ~KnownPost.deleted,
        )
    )
    return union_all(select(merged.c.post_id, merged.c.author_id), still_there)


@cache
def _home_page(older: bool, newer: bool, from_oldest: bool) -> Select[tuple[int, int]]:
    return _within(
        select(KnownPost.post_id, KnownPost.author_id)
        .join(FollowEdge, _FOLLOWED)
        .where(~KnownPost.deleted),
        older,
        newer,
        from_oldest,
    )
