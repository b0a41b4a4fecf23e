"""Replicas of follows made in other regions, from the ``follow.*`` events the replicator copies
here (docs/regions.md): a follow is written in the follower's home region, and the followee's
region needs the edge too, for its followers list and counts. Applying a replica writes the same
rows a local follow does, but no event: the follow was announced in its own region already."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from terrascale.common.events import (
    Envelope,
    FollowCreated,
    FollowDeleted,
    Handler,
    idempotent_handler,
)
from terrascale.common.settings import ServiceSettings
from terrascale.graph.repository import FollowRepository

CONSUMER_GROUP = "graph-service"
REPLICATED_CATEGORIES = ("follow",)


async def apply_replicated_follow(session: AsyncSession, envelope: Envelope) -> None:
    follows = FollowRepository(session)
    data = envelope.payload()
    if isinstance(data, FollowCreated):
        edge = {"follower_id": data.follower_id, "followee_id": data.followee_id}
        if await follows.insert(**edge):
            await follows.count(**edge, delta=1)
    elif isinstance(data, FollowDeleted):
        edge = {"follower_id": data.follower_id, "followee_id": data.followee_id}
        if await follows.delete(**edge):
            await follows.count(**edge, delta=-1)


def worker_categories(settings: ServiceSettings, categories: tuple[str, ...]) -> tuple[str, ...]:
    """The worker's categories, with ``follow`` when there are other regions to replicate."""
    if settings.region_map is None:
        return categories
    return (*categories, *REPLICATED_CATEGORIES)


def with_replicas(handler: Handler, session_factory: async_sessionmaker[AsyncSession]) -> Handler:
    """``handler``, plus replicated follows applied once each (inbox). This region's own follow
    events come back to the worker too, and are acknowledged untouched."""
    apply_once = idempotent_handler(
        session_factory, group=CONSUMER_GROUP, apply=apply_replicated_follow
    )

    async def handle(envelope: Envelope) -> None:
        if envelope.category in REPLICATED_CATEGORIES:
            if envelope.replicated_from is not None:
                await apply_once(envelope)
            return
        await handler(envelope)

    return handle
