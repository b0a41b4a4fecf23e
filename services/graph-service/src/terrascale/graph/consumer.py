"""The worker's event handling: ``user.created`` fills the ``known_user`` projection, and every
follow change brings the followee's side in step (if the request that made it could not)."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from terrascale.common.events import (
    Envelope,
    FollowCreated,
    FollowDeleted,
    Handler,
    UserCreated,
    idempotent_handler,
)
from terrascale.common.sharding import ShardedDatabases
from terrascale.graph import service as graph_service
from terrascale.graph.repository import KnownUserRepository

CONSUMER_GROUP = "graph-service"
CATEGORIES = ("user", "follow")
FOLLOW_CHANGES: dict[str, type[FollowCreated | FollowDeleted]] = {
    FollowCreated.event_type: FollowCreated,
    FollowDeleted.event_type: FollowDeleted,
}


async def _apply(session: AsyncSession, envelope: Envelope) -> None:
    await graph_service.project_user_created(
        known_users=KnownUserRepository(session), envelope=envelope
    )


def graph_events_handler(shards: ShardedDatabases) -> Handler:
    """Handles ``user.created`` once per event id (inbox row and projection row commit
    together). A follow change needs no inbox: bringing the followee's side in step copies the
    truth as it is, so a redelivery changes nothing. Other events are acknowledged without
    touching the database."""
    project = idempotent_handler(shards.primary.session_factory, group=CONSUMER_GROUP, apply=_apply)

    async def handle(envelope: Envelope) -> None:
        if envelope.type == UserCreated.event_type:
            await project(envelope)
        elif change_type := FOLLOW_CHANGES.get(envelope.type):
            change = envelope.data_as(change_type)
            await graph_service.mirror_follows(
                shards, follower_id=change.follower_id, followee_ids=[change.followee_id]
            )

    return handle
