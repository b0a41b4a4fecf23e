"""Replicas of follows made in other regions, from the ``follow.*`` events the replicator copies
here (docs/regions.md). A follow is written in the follower's home region; the followee's region
needs it too (followers list, counts). Here the replica is written as the follower's side, on
the follower's shard, exactly as a local follow writes it but without an event (it was announced
at home); the worker's usual step then brings the followee's side in step from it."""

from __future__ import annotations

from collections.abc import Callable

from terrascale.common.events import (
    Envelope,
    FollowCreated,
    FollowDeleted,
    Handler,
    mark_processed_once,
)
from terrascale.common.sharding import ShardedDatabases
from terrascale.graph.repository import FollowRepository

CONSUMER_GROUP = "graph-service"


async def apply_replicated_follow(shards: ShardedDatabases, envelope: Envelope) -> None:
    """Once per event id (the inbox row commits with the follower's side): a duplicate of an
    old ``follow.created`` must not bring back a follow deleted since."""
    data = envelope.payload()
    if not isinstance(data, FollowCreated | FollowDeleted):
        return
    async with shards.writing(data.follower_id) as session:
        if not await mark_processed_once(session, group=CONSUMER_GROUP, event_id=envelope.id):
            return
        follows = FollowRepository(session)
        edge = {"follower_id": data.follower_id, "followee_id": data.followee_id}
        if isinstance(data, FollowCreated):
            if await follows.insert(**edge):
                await follows.count_following(data.follower_id, 1)
        elif await follows.delete(**edge):
            await follows.count_following(data.follower_id, -1)


def with_replicas(handler: Handler, shards: Callable[[], ShardedDatabases]) -> Handler:
    """``handler``, with a replicated follow change written as the follower's side first, so
    that ``handler``'s mirroring copies it to the followee's side."""

    async def handle(envelope: Envelope) -> None:
        if envelope.category == "follow" and envelope.replicated_from is not None:
            await apply_replicated_follow(shards(), envelope)
        await handler(envelope)

    return handle
