"""Which notifications an event makes: pure functions, no I/O.

- ``follow.created``: the followee hears that the follower followed them. The subject is the
  follower (the actor again), so unfollowing and following again finds the notification it
  already made instead of making a second one.
- ``post.created``: the replied-to author hears of the reply, and each mentioned user of the
  mention; the subject is the new post. A replied-to author who is also mentioned gets the
  reply only (one notification per post and person). Nobody is notified of their own doing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from terrascale.common.events import Envelope, FollowCreated, PostCreated


class Kind(StrEnum):
    FOLLOW = "follow"
    MENTION = "mention"
    REPLY = "reply"


@dataclass(frozen=True, slots=True)
class Draft:
    """A notification to store, before it has a seq."""

    recipient_id: int
    kind: Kind
    actor_id: int
    subject_id: int
    created_at: datetime


def for_follow(follow: FollowCreated, *, occurred_at: datetime) -> list[Draft]:
    if follow.follower_id == follow.followee_id:
        return []
    return [
        Draft(
            recipient_id=follow.followee_id,
            kind=Kind.FOLLOW,
            actor_id=follow.follower_id,
            subject_id=follow.follower_id,
            created_at=occurred_at,
        )
    ]


def for_post(post: PostCreated, *, occurred_at: datetime) -> list[Draft]:
    drafts: list[Draft] = []
    notified = {post.author_id}
    if post.reply_to_author_id is not None and post.reply_to_author_id not in notified:
        notified.add(post.reply_to_author_id)
        drafts.append(_about_post(post, post.reply_to_author_id, Kind.REPLY, occurred_at))
    for user_id in post.mention_ids:
        if user_id not in notified:
            notified.add(user_id)
            drafts.append(_about_post(post, user_id, Kind.MENTION, occurred_at))
    return drafts


def _about_post(post: PostCreated, recipient_id: int, kind: Kind, occurred_at: datetime) -> Draft:
    return Draft(
        recipient_id=recipient_id,
        kind=kind,
        actor_id=post.author_id,
        subject_id=post.post_id,
        created_at=occurred_at,
    )


def drafts_for(envelope: Envelope) -> list[Draft]:
    """The notifications ``envelope`` makes; none for event types this service ignores.
    Data that does not fit its type raises InvalidEventError (the runner dead-letters it)."""
    if envelope.type == FollowCreated.event_type:
        return for_follow(envelope.data_as(FollowCreated), occurred_at=envelope.time)
    if envelope.type == PostCreated.event_type:
        return for_post(envelope.data_as(PostCreated), occurred_at=envelope.time)
    return []
