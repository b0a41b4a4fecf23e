"""The outbox relay: publishes committed outbox rows in order and marks them published.

Run it as a background task in every replica of a service; a PostgreSQL advisory lock (held on
the connection the relay publishes through) makes one of them the leader and leaves the others
waiting to take over. Each batch is one transaction: lock the oldest unpublished rows, publish
them, mark them. A crash after the publish and before the commit leaves the rows unpublished, so
they are published again: consumers see a duplicate, never a gap.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Protocol

from sqlalchemy import func, select, text, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from terrascale.common.events.envelope import Envelope
from terrascale.common.events.outbox import outbox_event, purge_published
from terrascale.common.events.settings import EventSettings
from terrascale.common.events.waiting import raise_if_cancelled, wait_event
from terrascale.common.logging import get_logger

logger = get_logger(__name__)

RELAY_LOCK_KEY = 0x7E_55_0B_0C  # one relay per database; advisory locks are per database
ERROR_BACKOFF_SECONDS = 1.0
PURGE_EVERY_SECONDS = 60.0


class Publisher(Protocol):
    async def publish(self, envelopes: Sequence[Envelope]) -> None: ...


class OutboxRelay:
    def __init__(
        self,
        engine: AsyncEngine,
        bus: Publisher,
        *,
        batch_size: int = 256,
        poll_seconds: float = 0.05,
        standby_seconds: float = 1.0,
        keep_published: timedelta = timedelta(hours=1),
        lock_key: int = RELAY_LOCK_KEY,
    ) -> None:
        self.engine = engine
        self.bus = bus
        self.batch_size = batch_size
        self.poll_seconds = poll_seconds
        self.standby_seconds = standby_seconds
        self.keep_published = keep_published
        self.lock_key = lock_key
        self.is_leader = False
        self.published = 0  # events this relay published, duplicates included
        self._last_purge = 0.0

    @classmethod
    def from_settings(
        cls, engine: AsyncEngine, bus: Publisher, settings: EventSettings
    ) -> OutboxRelay:
        return cls(
            engine,
            bus,
            batch_size=settings.event_relay_batch_size,
            poll_seconds=settings.event_relay_poll_seconds,
        )

    async def publish_batch(self, connection: AsyncConnection | None = None) -> int:
        """Publish the oldest unpublished rows (at most one batch); returns how many.

        Safe beside another caller: rows locked by one are skipped by the other.
        """
        if connection is None:
            async with self.engine.connect() as own:
                return await self.publish_batch(own)
        async with connection.begin():
            rows = (
                await connection.execute(
                    select(outbox_event.c.seq, outbox_event.c.payload)
                    .where(outbox_event.c.published_at.is_(None))
                    .order_by(outbox_event.c.seq)
                    .limit(self.batch_size)
                    .with_for_update(skip_locked=True)
                )
            ).all()
            if not rows:
                return 0
            await self.bus.publish([Envelope.model_validate(row.payload) for row in rows])
            await connection.execute(
                update(outbox_event)
                .where(outbox_event.c.seq.in_([row.seq for row in rows]))
                .values(published_at=func.now())
            )
        self.published += len(rows)
        return len(rows)

    async def run_until(self, stop: asyncio.Event) -> None:
        """Lead when the lock is free, stand by when it is not, until ``stop`` is set."""
        while not stop.is_set():
            try:
                async with self.engine.connect() as connection:
                    if await self._try_lock(connection):
                        try:
                            await self._lead(connection, stop)
                        finally:
                            await self._unlock(connection)
                    else:
                        await wait_event(stop, self.standby_seconds)
            except Exception:
                logger.exception("outbox relay failed; retrying")
                await wait_event(stop, ERROR_BACKOFF_SECONDS)

    async def _lead(self, connection: AsyncConnection, stop: asyncio.Event) -> None:
        self.is_leader = True
        logger.info("outbox relay leading")
        try:
            while not stop.is_set():
                raise_if_cancelled()
                published = await self.publish_batch(connection)
                if time.monotonic() - self._last_purge > PURGE_EVERY_SECONDS:
                    await self._purge(connection)
                if published < self.batch_size:
                    await wait_event(stop, self.poll_seconds)
        finally:
            self.is_leader = False

    async def _try_lock(self, connection: AsyncConnection) -> bool:
        locked = await connection.scalar(
            text("SELECT pg_try_advisory_lock(:key)"), {"key": self.lock_key}
        )
        await connection.commit()
        return bool(locked)

    async def _unlock(self, connection: AsyncConnection) -> None:
        # The lock belongs to the session: a pooled connection must not keep it.
        try:
            await connection.rollback()
            await connection.execute(
                text("SELECT pg_advisory_unlock(:key)"), {"key": self.lock_key}
            )
            await connection.commit()
        except BaseException:
            await connection.invalidate()
            raise

    async def _purge(self, connection: AsyncConnection) -> None:
        self._last_purge = time.monotonic()
        cutoff = datetime.now(UTC) - self.keep_published
        async with connection.begin():
            purged = await purge_published(connection, before=cutoff)
        if purged:
            logger.info("outbox rows purged", count=purged)
