"""A live stream's loop: send what is stored after a seq, then wait for a wake-up and repeat.

The subscription is opened before the first read, so a notification committed at any moment is
either in that read or announced after it: nothing is missed. Every read asks PostgreSQL for
``seq > last sent``, so nothing is sent twice. No connection is held between reads.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from terrascale.common.errors import DATABASE_UNAVAILABLE_ERRORS
from terrascale.common.logging import get_logger
from terrascale.common.metrics import SSE_CONNECTIONS
from terrascale.notifications.repository import NotificationRepository, StoredNotification
from terrascale.notifications.wakeups import WakeUpHub

logger = get_logger(__name__)

BATCH_SIZE = 100
# With wake-ups flowing, a stream still re-reads this often: a publish lost between the worker
# and Redis then delays a notification by a minute instead of until the next one.
RESYNC_SECONDS = 60.0


async def follow(
    *,
    session_factory: async_sessionmaker[AsyncSession],
    hub: WakeUpHub,
    recipient_id: int,
    after: int,
    poll_seconds: float,
) -> AsyncGenerator[StoredNotification]:
    """Yield ``recipient_id``'s notifications stored after seq ``after``, oldest first, forever
    (until the caller closes the generator, which releases the subscription)."""
    with hub.subscribe(recipient_id) as wakeups, SSE_CONNECTIONS.track_inprogress():
        while True:
            try:
                async with session_factory() as session:
                    batch = await NotificationRepository(session).after(
                        recipient_id, seq=after, limit=BATCH_SIZE
                    )
            except DATABASE_UNAVAILABLE_ERRORS as exc:
                # Keep the connection (heartbeats continue) and try again on the next turn.
                logger.warning("stream cannot read notifications", error=repr(exc))
                batch = []
            for stored in batch:
                yield stored
                after = stored.seq
            if len(batch) < BATCH_SIZE:
                await wakeups.wait(RESYNC_SECONDS if hub.connected else poll_seconds)
