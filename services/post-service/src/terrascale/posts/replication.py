"""Replicas of posts written in other regions, from the ``post.*`` events the replicator copies
here (docs/regions.md), so this region's timelines can hydrate a remote author's post and
replies to it validate. A replica is written with the id, time and entities the home region
gave it, and emits no event: the post was announced in its own region already."""

from __future__ import annotations

from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from terrascale.common.events import Envelope, Handler, PostCreated, PostDeleted, idempotent_handler
from terrascale.common.ids import decode_id
from terrascale.common.settings import ServiceSettings
from terrascale.posts.models import KnownUser, Post
from terrascale.posts.text import find_urls

CONSUMER_GROUP = "post-service"
REPLICATED_CATEGORIES = ("post",)


async def _mentions(session: AsyncSession, created: PostCreated) -> list[dict[str, object]]:
    """``[{"user_id", "username"}]`` as the home region resolved them; from an older producer
    (ids only), the names this region knows."""
    names = created.mention_usernames
    if names is None or len(names) != len(created.mention_ids):
        rows = await session.execute(
            select(KnownUser.id, KnownUser.username).where(KnownUser.id.in_(created.mention_ids))
        )
        known = dict(rows.tuples().all())
        names = [known.get(user_id, str(user_id)) for user_id in created.mention_ids]
    return [
        {"user_id": user_id, "username": name}
        for user_id, name in zip(created.mention_ids, names, strict=True)
    ]


async def apply_replicated_post(session: AsyncSession, envelope: Envelope) -> None:
    data = envelope.payload()
    if isinstance(data, PostCreated):
        await session.execute(
            pg_insert(Post)
            .values(
                id=data.post_id,
                author_id=data.author_id,
                text=data.text,
                reply_to=data.reply_to,
                mentions=await _mentions(session, data),
                hashtags=data.hashtags,
                urls=find_urls(data.text),  # the same extraction the home region ran
                created_at=decode_id(data.post_id).created_at,
            )
            .on_conflict_do_nothing(index_elements=[Post.id])
        )
    elif isinstance(data, PostDeleted):
        await session.execute(
            update(Post)
            .where(Post.id == data.post_id, Post.deleted_at.is_(None))
            .values(deleted_at=func.now(), version=Post.version + 1)
        )


def worker_categories(settings: ServiceSettings, categories: tuple[str, ...]) -> tuple[str, ...]:
    """The worker's categories, with ``post`` when there are other regions to replicate."""
    if settings.region_map is None:
        return categories
    return (*categories, *REPLICATED_CATEGORIES)


def with_replicas(handler: Handler, session_factory: async_sessionmaker[AsyncSession]) -> Handler:
    """``handler``, plus replicated posts applied once each (inbox). This region's own post
    events come back to the worker too, and are acknowledged untouched."""
    apply_once = idempotent_handler(
        session_factory, group=CONSUMER_GROUP, apply=apply_replicated_post
    )

    async def handle(envelope: Envelope) -> None:
        if envelope.category in REPLICATED_CATEGORIES:
            if envelope.replicated_from is not None:
                await apply_once(envelope)
            return
        await handler(envelope)

    return handle
