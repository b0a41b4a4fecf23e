"""Replicas of posts written in other regions, from the ``post.*`` events the replicator copies
here (docs/regions.md), so this region's timelines can hydrate a remote author's post and
replies to it validate. A replica is written on its author's shard, like any post, with the id,
time and entities the home region gave it, and emits no event: the post was announced in its own
region already. A replicated delete leaves a tombstone in this region's post cache, as a local
one does, so no cached copy outlives it."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from terrascale.common.events import (
    Envelope,
    Handler,
    PostCreated,
    PostDeleted,
    mark_processed_once,
)
from terrascale.common.ids import decode_id
from terrascale.common.settings import ServiceSettings
from terrascale.common.sharding import ShardedDatabases
from terrascale.posts.cache import PostCache
from terrascale.posts.models import KnownUser, Post
from terrascale.posts.repository import PostRepository
from terrascale.posts.service import cache_entry
from terrascale.posts.text import find_urls

CONSUMER_GROUP = "post-service"
REPLICATED_CATEGORIES = ("post",)


async def _mentions(shards: ShardedDatabases, created: PostCreated) -> list[dict[str, object]]:
    """``[{"user_id", "username"}]`` as the home region resolved them; from an older producer
    (ids only), the names this region knows (its user projection lives in the primary)."""
    names = created.mention_usernames
    if names is None or len(names) != len(created.mention_ids):
        async with shards.primary.session_factory() as session:
            rows = await session.execute(
                select(KnownUser.id, KnownUser.username).where(
                    KnownUser.id.in_(created.mention_ids)
                )
            )
        known = dict(rows.tuples().all())
        names = [known.get(user_id, str(user_id)) for user_id in created.mention_ids]
    return [
        {"user_id": user_id, "username": name}
        for user_id, name in zip(created.mention_ids, names, strict=True)
    ]


async def _store(
    session: AsyncSession, created: PostCreated, mentions: list[dict[str, object]]
) -> None:
    await session.execute(
        pg_insert(Post)
        .values(
            id=created.post_id,
            author_id=created.author_id,
            text=created.text,
            reply_to=created.reply_to,
            mentions=mentions,
            hashtags=created.hashtags,
            urls=find_urls(created.text),  # the same extraction the home region ran
            created_at=decode_id(created.post_id).created_at,
        )
        .on_conflict_do_nothing(index_elements=[Post.id])
    )


async def apply_replicated_post(
    shards: ShardedDatabases, cache: PostCache, envelope: Envelope
) -> None:
    """Once per event id: the inbox row commits with the replica, on the author's shard. A
    delete drops the cached copy before the commit and caches the tombstone after it, as
    ``service.delete_post`` does."""
    data = envelope.payload()
    if not isinstance(data, PostCreated | PostDeleted):
        return
    mentions = await _mentions(shards, data) if isinstance(data, PostCreated) else []
    deleted: Post | None = None
    async with shards.writing(data.author_id) as session:
        if not await mark_processed_once(session, group=CONSUMER_GROUP, event_id=envelope.id):
            return
        if isinstance(data, PostCreated):
            await _store(session, data, mentions)
        else:
            deleted = await PostRepository(session).soft_delete(
                post_id=data.post_id, author_id=data.author_id
            )
            if deleted is not None:
                await cache.delete(deleted.id)
    if deleted is not None:
        await cache.store_many({deleted.id: cache_entry(deleted)})


def worker_categories(settings: ServiceSettings, categories: tuple[str, ...]) -> tuple[str, ...]:
    """The worker's categories, with ``post`` when there are other regions to replicate."""
    if settings.region_map is None:
        return categories
    return (*categories, *REPLICATED_CATEGORIES)


def with_replicas(
    handler: Handler, shards: Callable[[], ShardedDatabases], cache: Callable[[], PostCache]
) -> Handler:
    """``handler``, plus replicated posts applied once each. This region's own post events
    come back to the worker too, and are acknowledged untouched."""

    async def handle(envelope: Envelope) -> None:
        if envelope.category in REPLICATED_CATEGORIES:
            if envelope.replicated_from is not None:
                await apply_replicated_post(shards(), cache(), envelope)
            return
        await handler(envelope)

    return handle
