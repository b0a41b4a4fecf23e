"""SQL over this service's projections: the follow graph and the posts it has seen."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import and_, delete, func, literal_column, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql import Select

from terrascale.timelines.models import FollowEdge, KnownPost
from terrascale.timelines.window import Window


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

    async def merged_posts(self, user_id: int, window: Window) -> list[int]:
        """The window's posts by followees that were not fanned out (celebrities), exact."""
        statement = _within(
            select(KnownPost.post_id)
            .join(
                FollowEdge,
                and_(
                    FollowEdge.followee_id == KnownPost.author_id,
                    FollowEdge.follower_id == user_id,
                ),
            )
            .where(~KnownPost.fanned_out, ~KnownPost.deleted),
            window,
        )
        return await self._newest_first(statement, window)

    async def still_in_home(self, user_id: int, post_ids: Sequence[int]) -> set[int]:
        """Which of these posts belong in the user's home timeline now: known, not deleted,
        by someone they follow. Catches what a race between fan-out and an unfollow left."""
        if not post_ids:
            return set()
        statement = (
            select(KnownPost.post_id)
            .join(
                FollowEdge,
                and_(
                    FollowEdge.followee_id == KnownPost.author_id,
                    FollowEdge.follower_id == user_id,
                ),
            )
            .where(KnownPost.post_id.in_(post_ids), ~KnownPost.deleted)
        )
        return set(await self.session.scalars(statement))

    async def home_page(self, user_id: int, window: Window) -> list[int]:
        """The window straight from the projections, every post of every followee: the answer
        when Redis is unavailable."""
        statement = _within(
            select(KnownPost.post_id)
            .join(
                FollowEdge,
                and_(
                    FollowEdge.followee_id == KnownPost.author_id,
                    FollowEdge.follower_id == user_id,
                ),
            )
            .where(~KnownPost.deleted),
            window,
        )
        return await self._newest_first(statement, window)

    async def _newest_first(self, statement: Select[tuple[int]], window: Window) -> list[int]:
        ids = list(await self.session.scalars(statement))
        return ids[::-1] if window.from_oldest else ids


def _within(statement: Select[tuple[int]], window: Window) -> Select[tuple[int]]:
    if window.older_than is not None:
        statement = statement.where(KnownPost.post_id < window.older_than)
    if window.newer_than is not None:
        statement = statement.where(KnownPost.post_id > window.newer_than)
    order = KnownPost.post_id.asc() if window.from_oldest else KnownPost.post_id.desc()
    return statement.order_by(order).limit(window.limit)
