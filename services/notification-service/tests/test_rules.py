"""Which notifications an event makes (pure rules, no database)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from terrascale.common.events import (
    Envelope,
    FollowCreated,
    FollowDeleted,
    InvalidEventError,
    PostCreated,
    PostDeleted,
)
from terrascale.notifications.rules import Draft, Kind, drafts_for, for_follow, for_post

WHEN = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
ADA, BOB, CY, DEE = 101, 102, 103, 104
POST = 9001


def post(**fields: object) -> PostCreated:
    values: dict[str, object] = {"post_id": POST, "author_id": ADA, "text": "hello"}
    values.update(fields)
    return PostCreated.model_validate(values)


def test_a_follow_notifies_the_followee_with_the_follower_as_subject() -> None:
    assert for_follow(FollowCreated(follower_id=ADA, followee_id=BOB), occurred_at=WHEN) == [
        Draft(recipient_id=BOB, kind=Kind.FOLLOW, actor_id=ADA, subject_id=ADA, created_at=WHEN)
    ]


def test_no_notification_for_following_yourself() -> None:
    assert for_follow(FollowCreated(follower_id=ADA, followee_id=ADA), occurred_at=WHEN) == []


def test_each_mentioned_user_is_notified_once_but_not_the_author() -> None:
    drafts = for_post(post(mention_ids=[BOB, ADA, CY, BOB]), occurred_at=WHEN)
    assert [(d.recipient_id, d.kind, d.actor_id, d.subject_id) for d in drafts] == [
        (BOB, Kind.MENTION, ADA, POST),
        (CY, Kind.MENTION, ADA, POST),
    ]
    assert {d.created_at for d in drafts} == {WHEN}


def test_a_reply_notifies_the_replied_to_author() -> None:
    drafts = for_post(post(reply_to=77, reply_to_author_id=BOB), occurred_at=WHEN)
    assert [(d.recipient_id, d.kind, d.subject_id) for d in drafts] == [(BOB, Kind.REPLY, POST)]


def test_a_mentioned_replied_to_author_gets_only_the_reply() -> None:
    drafts = for_post(
        post(reply_to=77, reply_to_author_id=BOB, mention_ids=[BOB, CY]), occurred_at=WHEN
    )
    assert [(d.recipient_id, d.kind) for d in drafts] == [(BOB, Kind.REPLY), (CY, Kind.MENTION)]


def test_replying_to_yourself_notifies_only_the_others_mentioned() -> None:
    drafts = for_post(
        post(reply_to=77, reply_to_author_id=ADA, mention_ids=[ADA, DEE]), occurred_at=WHEN
    )
    assert [(d.recipient_id, d.kind) for d in drafts] == [(DEE, Kind.MENTION)]


def test_a_reply_from_an_older_producer_without_the_author_notifies_nobody_of_it() -> None:
    assert for_post(post(reply_to=77), occurred_at=WHEN) == []


def test_envelopes_are_dispatched_by_type_and_stamped_with_the_event_time() -> None:
    envelope = Envelope.wrap(post(mention_ids=[BOB]), source="post-service")
    [draft] = drafts_for(envelope)
    assert (draft.recipient_id, draft.created_at) == (BOB, envelope.time)
    follow = Envelope.wrap(FollowCreated(follower_id=CY, followee_id=DEE), source="graph")
    assert [d.kind for d in drafts_for(follow)] == [Kind.FOLLOW]


@pytest.mark.parametrize(
    "data",
    [FollowDeleted(follower_id=ADA, followee_id=BOB), PostDeleted(post_id=POST, author_id=ADA)],
)
def test_other_events_make_nothing(data: FollowDeleted | PostDeleted) -> None:
    assert drafts_for(Envelope.wrap(data, source="elsewhere")) == []


def test_data_that_does_not_fit_its_type_is_invalid() -> None:
    envelope = Envelope.wrap(post(), source="post-service")
    broken = envelope.model_copy(update={"data": {"post_id": "nope"}})
    with pytest.raises(InvalidEventError):
        drafts_for(broken)
