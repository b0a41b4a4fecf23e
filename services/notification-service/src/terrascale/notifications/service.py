"""Notification Service business rules: storing what events make, pages, unread counts, the
read mark and where a stream starts. No HTTP here."""

from __future__ import annotations

from collections.abc import Sequence

from terrascale.notifications.repository import NotificationRepository, StoredNotification
from terrascale.notifications.rules import Draft, Kind
from terrascale.notifications.schemas import NotificationRead, UnreadCount


async def record(
    *, notifications: NotificationRepository, drafts: Sequence[Draft]
) -> list[tuple[int, int]]:
    """Store ``drafts``; the (recipient id, seq) of each one that was new (a redelivered event
    stores nothing). Recipients are locked in id order, so two events locking the same users
    cannot deadlock."""
    created: list[tuple[int, int]] = []
    for draft in sorted(drafts, key=lambda draft: draft.recipient_id):
        seq = await notifications.add(draft)
        if seq is not None:
            created.append((draft.recipient_id, seq))
    return created


def to_read(stored: StoredNotification) -> NotificationRead:
    return NotificationRead(
        id=stored.seq,
        kind=Kind(stored.kind).value,
        actor_id=stored.actor_id,
        post_id=None if stored.kind == Kind.FOLLOW else stored.subject_id,
        created_at=stored.created_at,
        read=stored.read,
    )


async def list_notifications(
    *,
    notifications: NotificationRepository,
    recipient_id: int,
    limit: int,
    kinds: Sequence[str] | None = None,
    max_id: int | None = None,
    since_id: int | None = None,
    min_id: int | None = None,
) -> list[NotificationRead]:
    page = await notifications.newest_first(
        recipient_id, limit=limit, kinds=kinds, max_id=max_id, since_id=since_id, min_id=min_id
    )
    return [to_read(stored) for stored in page]


async def unread_count(*, notifications: NotificationRepository, recipient_id: int) -> UnreadCount:
    return UnreadCount(count=(await notifications.state(recipient_id)).unread)


async def mark_read(
    *, notifications: NotificationRepository, recipient_id: int, up_to: int | None
) -> UnreadCount:
    """Read up to ``up_to`` (all when None); the unread count afterwards."""
    state = await notifications.mark_read(recipient_id, up_to=up_to)
    return UnreadCount(count=state.unread)


async def stream_start(
    *, notifications: NotificationRepository, recipient_id: int, last_event_id: int | None
) -> int:
    """The seq a stream sends after: the client's ``Last-Event-ID`` (clamped to the newest, so
    an id from a reset database cannot silence the stream), or the newest for a new client."""
    last_seq = (await notifications.state(recipient_id)).last_seq
    return last_seq if last_event_id is None else min(last_event_id, last_seq)
