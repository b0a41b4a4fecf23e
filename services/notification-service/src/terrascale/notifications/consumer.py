"""The worker's event handling: ``follow.created`` and ``post.created`` become notifications.

Idempotent without an inbox: each fact has a unique key, so a redelivered event inserts nothing
(and wakes nobody). Other ``follow.*`` and ``post.*`` events are acknowledged untouched.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from terrascale.common.db import transaction
from terrascale.common.events import Envelope, Handler
from terrascale.common.regions import everyone_is_local
from terrascale.notifications import service as notification_service
from terrascale.notifications.repository import NotificationRepository
from terrascale.notifications.rules import drafts_for
from terrascale.notifications.wakeups import WakeUpPublisher

CONSUMER_GROUP = "notification-service"
CATEGORIES = ("follow", "post")


def notification_events_handler(
    session_factory: async_sessionmaker[AsyncSession],
    publisher: WakeUpPublisher,
    is_local: Callable[[int], bool] = everyone_is_local,
) -> Handler:
    """With regions, only this region's users are notified here: a follow or mention of a user
    homed elsewhere reaches their region as a replicated event and is notified there."""

    async def handle(envelope: Envelope) -> None:
        drafts = [draft for draft in drafts_for(envelope) if is_local(draft.recipient_id)]
        if not drafts:
            return
        async with transaction(session_factory) as session:
            created = await notification_service.record(
                notifications=NotificationRepository(session), drafts=drafts
            )
        # After the commit: a stream woken earlier would read before the rows are visible.
        await publisher.announce(created)

    return handle
