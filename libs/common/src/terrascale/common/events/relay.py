"""The outbox relay: publishes committed outbox rows in order and marks them published.

Run it as a background task in every replica of a service; a PostgreSQL advisory lock (held on
the connection the relay publishes through) makes one of them the leader and leaves the others
waiting to take over. Each batch is one transaction: lock the oldest unpublished rows, publish
them, mark them. A crash after the publish and before the commit leaves the rows unpublished, so
they are published again: consumers see a duplicate, never a gap.

With tracing on, each event gets a publish span, a child of the span that wrote the event; the
event leaves with that span as its ``traceparent``, so its consumers' spans hang below the relay
and one trace runs from the request through the relay to every consumer.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Generator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Protocol

from opentelemetry.trace import Span, SpanKind, Status, StatusCode, Tracer
from sqlalchemy import func, select, text, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from terrascale.common.events.envelope import Envelope, trace_context, traceparent_of
from terrascale.common.events.outbox import (
    UNPUBLISHED,
    outbox_event,
    purge_processed,
    purge_published,
)
from terrascale.common.events.settings import EventSettings
from terrascale.common.events.waiting import raise_if_cancelled, wait_event
from terrascale.common.logging import get_logger
from terrascale.common.metrics import (
    OUTBOX_OLDEST_UNPUBLISHED_AGE,
    OUTBOX_PUBLISHED,
    OUTBOX_UNPUBLISHED,
)

logger = get_logger(__name__)

RELAY_LOCK_KEY = 0x7E_55_0B_0C  # one relay per database; advisory locks are per database
ERROR_BACKOFF_SECONDS = 1.0
PURGE_EVERY_SECONDS = 60.0
PURGE_BATCH = 1000
# A round stops after this long: publishing waits at most that, and a longer backlog (say, an
# inbox never purged before) is cleared over the next rounds.
PURGE_ROUND_SECONDS = 0.25
SAMPLE_BACKLOG_EVERY_SECONDS = 5.0


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
        keep_processed: timedelta = timedelta(days=7),
        lock_key: int = RELAY_LOCK_KEY,
        tracer: Tracer | None = None,
    ) -> None:
        self.engine = engine
        self.bus = bus
        self.batch_size = batch_size
        self.poll_seconds = poll_seconds
        self.standby_seconds = standby_seconds
        self.keep_published = keep_published
        self.keep_processed = keep_processed
        self.lock_key = lock_key
        self.tracer = tracer
        self.is_leader = False
        self.published = 0  # events this relay published, duplicates included
        self._last_purge = 0.0
        self._last_sample = 0.0

    @classmethod
    def from_settings(
        cls,
        engine: AsyncEngine,
        bus: Publisher,
        settings: EventSettings,
        *,
        tracer: Tracer | None = None,
    ) -> OutboxRelay:
        return cls(
            engine,
            bus,
            batch_size=settings.event_relay_batch_size,
            poll_seconds=settings.event_relay_poll_seconds,
            keep_processed=timedelta(hours=settings.event_inbox_retention_hours),
            tracer=tracer,
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
            envelopes = [Envelope.model_validate(row.payload) for row in rows]
            with self._publish_spans(envelopes) as traced:
                await self.bus.publish(traced)
            await connection.execute(
                update(outbox_event)
                .where(outbox_event.c.seq.in_([row.seq for row in rows]))
                .values(published_at=func.now())
            )
        self.published += len(rows)
        OUTBOX_PUBLISHED.inc(len(rows))
        return len(rows)

    @contextmanager
    def _publish_spans(self, envelopes: list[Envelope]) -> Generator[list[Envelope]]:
        """The envelopes to publish, each under its own publish span when tracing is on."""
        if self.tracer is None:
            yield envelopes
            return
        spans: list[Span] = []
        traced: list[Envelope] = []
        for envelope in envelopes:
            span = self.tracer.start_span(
                f"{envelope.type} publish",
                context=trace_context(envelope.traceparent),
                kind=SpanKind.PRODUCER,
                attributes={
                    "messaging.system": getattr(self.bus, "transport", "unknown"),
                    "messaging.operation.type": "send",
                    "messaging.destination.name": envelope.category,
                    "messaging.message.id": str(envelope.id),
                },
            )
            spans.append(span)
            traced.append(envelope.model_copy(update={"traceparent": traceparent_of(span)}))
        try:
            yield traced
        except Exception as exc:
            for span in spans:
                span.record_exception(exc)
                span.set_status(Status(StatusCode.ERROR, repr(exc)))
            raise
        finally:
            for span in spans:
                span.end()

    async def sample_backlog(self, connection: AsyncConnection) -> None:
        """Set the backlog gauges: how many events wait, and since when."""
        self._last_sample = time.monotonic()
        async with connection.begin():
            waiting, oldest = (
                await connection.execute(
                    select(func.count(), func.min(outbox_event.c.created_at)).where(UNPUBLISHED)
                )
            ).one()
        OUTBOX_UNPUBLISHED.set(waiting)
        age = 0.0 if oldest is None else (datetime.now(UTC) - oldest).total_seconds()
        OUTBOX_OLDEST_UNPUBLISHED_AGE.set(max(0.0, age))

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
                if time.monotonic() - self._last_sample > SAMPLE_BACKLOG_EVERY_SECONDS:
                    await self.sample_backlog(connection)
                if time.monotonic() - self._last_purge > PURGE_EVERY_SECONDS:
                    await self.purge(connection)
                if published < self.batch_size:
                    await wait_event(stop, self.poll_seconds)
        finally:
            self.is_leader = False
            # A standby reports no backlog; the next leader samples afresh.
            OUTBOX_UNPUBLISHED.set(0)
            OUTBOX_OLDEST_UNPUBLISHED_AGE.set(0)

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

    async def purge(self, connection: AsyncConnection) -> tuple[int, int]:
        """Delete published outbox rows older than ``keep_published`` and inbox entries older
        than ``keep_processed`` (one database holds both), a short transaction per batch;
        returns how many of each."""
        self._last_purge = time.monotonic()
        deadline = self._last_purge + PURGE_ROUND_SECONDS
        now = datetime.now(UTC)
        counts: list[int] = []
        for purge_batch, cutoff in (
            (purge_published, now - self.keep_published),
            (purge_processed, now - self.keep_processed),
        ):
            total = 0
            while True:
                async with connection.begin():
                    purged = await purge_batch(connection, before=cutoff, limit=PURGE_BATCH)
                total += purged
                if purged < PURGE_BATCH or time.monotonic() > deadline:
                    break
            counts.append(total)
        published, processed = counts
        if published or processed:
            logger.info("outbox and inbox purged", outbox_rows=published, inbox_entries=processed)
        return published, processed
