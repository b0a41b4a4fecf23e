"""Timeline Service rules: fan-out on write, merge on read, rebuild when missing. No HTTP here.

Every step is idempotent (an upsert, a ZADD, a ZREM), so a redelivered event, or one whose
handler died halfway through its batches, is simply applied again: nothing is lost and nothing
is doubled. The order of the steps is what keeps concurrent events from missing each other:
each handler commits its projection row first and only then reads the other side (the author's
followers, the followee's posts, a rebuilt user's followees), so of two racing changes the
later reader always sees the earlier writer.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from redis.exceptions import RedisError
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from terrascale.common.logging import get_logger
from terrascale.common.metrics import (
    TIMELINE_FANOUT_DURATION,
    TIMELINE_FANOUT_INSERTS,
    cache_lookup_counters,
)
from terrascale.common.regions import everyone_is_local
from terrascale.timelines.cache import HydrationCache
from terrascale.timelines.repository import TimelineRepository
from terrascale.timelines.store import TimelineStore
from terrascale.timelines.window import Window

logger = get_logger(__name__)

T = TypeVar("T")
HOME_TIMELINE_LOOKUPS = cache_lookup_counters("home_timeline")


@dataclass(frozen=True, slots=True)
class Page:
    """A page of posts, newest first, as post id -> author id. ``scanned`` is the window's ids
    before the last check: cursors come from it, so posts dropped by that check do not end
    paging early."""

    authors_of: dict[int, int]
    scanned: list[int]

    @property
    def post_ids(self) -> list[int]:
        return list(self.authors_of)


@dataclass(frozen=True, slots=True)
class Timelines:
    session_factory: async_sessionmaker[AsyncSession]
    # Sessions on an autocommit engine without pre-ping, for the reads of one statement each (a
    # page's check, a rebuild's query): no round trips but the statement's (see ``_read``).
    reads: async_sessionmaker[AsyncSession]
    store: TimelineStore
    cache: HydrationCache
    celebrity_follower_threshold: int
    fanout_batch_size: int
    # With regions, followers homed elsewhere get the post in their own region's timelines
    # (from the replicated event); here only local followers' timelines are written.
    is_local: Callable[[int], bool] = everyone_is_local

    # -- events ------------------------------------------------------------------------------

    async def post_created(self, *, post_id: int, author_id: int) -> int:
        """Put the post into the author's followers' timelines, unless the author is a
        celebrity (then readers merge it in). Returns how many timelines were written."""
        async with self.session_factory() as session, session.begin():
            timelines = TimelineRepository(session)
            fan_out = not await timelines.has_more_followers_than(
                author_id, self.celebrity_follower_threshold
            )
            post = await timelines.remember_post(
                post_id=post_id, author_id=author_id, fan_out=fan_out
            )
        if not post.fanned_out or post.deleted:
            return 0
        written = 0

        async def add(followers: Sequence[int]) -> None:
            nonlocal written
            added = await self.store.add(followers, [post_id])
            TIMELINE_FANOUT_INSERTS.inc(added)
            written += added

        with TIMELINE_FANOUT_DURATION.time():
            await self._for_each_follower_batch(author_id, add)
        return written

    async def post_deleted(self, *, post_id: int, author_id: int) -> None:
        async with self.session_factory() as session, session.begin():
            was_fanned_out = await TimelineRepository(session).forget_post(
                post_id=post_id, author_id=author_id
            )
        # Pages never show it again (they are checked against the tombstone): this only frees
        # the memory.
        await self.cache.forget_post(post_id)
        if was_fanned_out:

            async def remove(followers: Sequence[int]) -> None:
                await self.store.remove(followers, [post_id])

            await self._for_each_follower_batch(author_id, remove)

    async def follow_created(self, *, follower_id: int, followee_id: int) -> None:
        """Merge the followee's recent posts into the follower's timeline, if they have one (a
        rebuild that makes one later reads the edge committed here)."""
        async with self.session_factory() as session, session.begin():
            await TimelineRepository(session).add_follow(
                follower_id=follower_id, followee_id=followee_id
            )
        if not await self.store.exists(follower_id):
            return
        posts = await self._fanned_out_posts_of(followee_id)
        await self.store.add([follower_id], posts)

    async def follow_deleted(self, *, follower_id: int, followee_id: int) -> None:
        """Take the followee's posts out of the follower's timeline. Only the newest
        ``timeline_max_posts`` can be in it: had the followee that many newer ones, the older
        ones were trimmed already."""
        async with self.session_factory() as session, session.begin():
            await TimelineRepository(session).remove_follow(
                follower_id=follower_id, followee_id=followee_id
            )
        posts = await self._fanned_out_posts_of(followee_id)
        await self.store.remove([follower_id], posts)

    async def author_updated(self, *, author_id: int) -> None:
        """The display name may have changed: the next page asks the User Service again."""
        await self.cache.forget_author(author_id)

    # -- reads -------------------------------------------------------------------------------

    async def home(self, user_id: int, window: Window) -> Page:
        """The window of the user's home timeline: their Redis timeline (rebuilt first if it is
        missing) merged with their celebrity followees' posts. Without Redis, the whole answer
        comes from the projections, slower but complete."""
        if not self.is_local(user_id):
            # Homed elsewhere: nothing fans out into a timeline kept here, so read the
            # projections (the replicated follows and posts), as when Redis is down.
            authors_of = await self._read(lambda timelines: timelines.home_page(user_id, window))
            return Page(authors_of=authors_of, scanned=list(authors_of))
        try:
            stored = await self._stored_page(user_id, window)
        except RedisError as exc:
            logger.warning("timeline store unavailable; reading the database", error=repr(exc))
            HOME_TIMELINE_LOOKUPS["error"].inc()
            stored = None
        if stored is None:
            authors_of = await self._read(lambda timelines: timelines.home_page(user_id, window))
            return Page(authors_of=authors_of, scanned=list(authors_of))
        # The stored posts still in the home timeline, and the celebrities' posts.
        current = await self._read(lambda timelines: timelines.home_check(user_id, stored, window))
        scanned = window.select([*stored, *current])
        return Page(
            authors_of={post: current[post] for post in scanned if post in current},
            scanned=scanned,
        )

    async def rebuild(self, user_id: int) -> bool:
        """Rebuild the user's timeline from the projections; False if it vanished meanwhile.
        The timeline exists (not ready) before the database is read, so a post committed after
        that read is fanned out into it rather than missed."""
        await self.store.begin_rebuild(user_id)
        posts = await self._read(
            lambda timelines: timelines.home_posts(user_id, limit=self.store.max_posts)
        )
        rebuilt = await self.store.finish_rebuild(user_id, posts)
        logger.info("home timeline rebuilt", user_id=user_id, posts=len(posts), ok=rebuilt)
        return rebuilt

    async def _stored_page(self, user_id: int, window: Window) -> list[int] | None:
        """The Redis part of the page, rebuilding a timeline that is not ready (twice at most:
        a flush in the middle of a rebuild is worth one retry, not a loop)."""
        for _ in range(2):
            page = await self.store.read(user_id, window)
            if page is not None:
                HOME_TIMELINE_LOOKUPS["hit"].inc()
                return page
            HOME_TIMELINE_LOOKUPS["miss"].inc()
            await self.rebuild(user_id)
        return await self.store.read(user_id, window)

    async def _read(self, read: Callable[[TimelineRepository], Awaitable[T]]) -> T:
        """One read-only statement on ``reads``. Its connections are not pinged before use (a
        round trip per page); one that PostgreSQL dropped fails its statement, SQLAlchemy
        discards it and every older connection, and the read runs once more on a new one."""
        try:
            async with self.reads() as session:
                return await read(TimelineRepository(session))
        except DBAPIError as exc:
            if not exc.connection_invalidated:
                raise
            logger.info("database connection was dropped; reading again", error=repr(exc))
        async with self.reads() as session:
            return await read(TimelineRepository(session))

    async def _fanned_out_posts_of(self, author_id: int) -> list[int]:
        async with self.session_factory() as session:
            return await TimelineRepository(session).fanned_out_posts_of(
                author_id, limit=self.store.max_posts
            )

    async def _for_each_follower_batch(
        self, author_id: int, apply: Callable[[Sequence[int]], Awaitable[None]]
    ) -> None:
        """Keyset batches, each read in a short transaction of its own: a 10,000-follower
        fan-out holds no database connection or snapshot while it writes to Redis."""
        after = 0
        while True:
            async with self.session_factory() as session:
                batch = await TimelineRepository(session).followers_after(
                    author_id, after=after, limit=self.fanout_batch_size
                )
            if not batch:
                return
            if local := [follower for follower in batch if self.is_local(follower)]:
                await apply(local)
            if len(batch) < self.fanout_batch_size:
                return
            after = batch[-1]
