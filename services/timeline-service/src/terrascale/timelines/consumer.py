"""The worker's event handling: posts and follows, into the projections and the timelines;
profile changes, out of the hydration cache."""

from __future__ import annotations

from terrascale.common.events import (
    Envelope,
    FollowCreated,
    FollowDeleted,
    Handler,
    PostCreated,
    PostDeleted,
    UserUpdated,
)
from terrascale.timelines.service import Timelines

CONSUMER_GROUP = "timeline-service"
CATEGORIES = ("post", "follow", "user")


def timeline_events_handler(timelines: Timelines) -> Handler:
    """No inbox: every step of every event is idempotent, which also covers a handler that died
    after committing its projection row but before finishing its Redis writes (an inbox row
    committed with the projection would make the redelivery skip those writes)."""

    async def handle(envelope: Envelope) -> None:
        data = envelope.payload()
        if isinstance(data, PostCreated):
            await timelines.post_created(post_id=data.post_id, author_id=data.author_id)
        elif isinstance(data, PostDeleted):
            await timelines.post_deleted(post_id=data.post_id, author_id=data.author_id)
        elif isinstance(data, FollowCreated):
            await timelines.follow_created(
                follower_id=data.follower_id, followee_id=data.followee_id
            )
        elif isinstance(data, FollowDeleted):
            await timelines.follow_deleted(
                follower_id=data.follower_id, followee_id=data.followee_id
            )
        elif isinstance(data, UserUpdated):
            await timelines.author_updated(author_id=data.user_id)

    return handle
