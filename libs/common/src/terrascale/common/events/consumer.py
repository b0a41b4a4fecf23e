"""The consumer runner: turns each delivered message into one handler call and an outcome.

The transport delivers one partition's messages one at a time; the runner decodes the envelope,
starts the handler's span as a child of the producer's ``traceparent``, calls the handler and
answers ACK (after the handler, so after its transaction committed), RETRY (the transport
redelivers it before anything later in the partition) or DEAD (malformed or unknown events at
once; any other failure on the EVENT_MAX_DELIVERIES-th delivery).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime

import structlog
from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode, Tracer
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from terrascale.common.errors import DATABASE_UNAVAILABLE_ERRORS, is_database_busy
from terrascale.common.events.bus import EventBus, Outcome, Received
from terrascale.common.events.envelope import Envelope, trace_context
from terrascale.common.events.outbox import mark_processed_once
from terrascale.common.events.schemas import InvalidEventError
from terrascale.common.events.settings import EventSettings
from terrascale.common.events.waiting import wait_event
from terrascale.common.logging import get_logger
from terrascale.common.metrics import (
    CONSUMER_LAG,
    EVENT_DELAY,
    EVENT_HANDLING_DURATION,
    EVENTS_HANDLED,
)

logger = get_logger(__name__)

Handler = Callable[[Envelope], Awaitable[None]]
Apply = Callable[[AsyncSession, Envelope], Awaitable[None]]

# A dependency that is down says nothing about the event: waiting it out must not count towards
# EVENT_MAX_DELIVERIES, or an outage of the database would dead-letter everything in flight.
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    *DATABASE_UNAVAILABLE_ERRORS,
    RedisConnectionError,
    RedisTimeoutError,
)
TRANSIENT_BACKOFF_CAP_SECONDS = 30.0
LAG_SAMPLE_SECONDS = 5.0
UNREADABLE = "unreadable"  # the type label of a delivery whose envelope does not parse


def default_consumer_name() -> str:
    """Unique per process: a restarted process must not inherit its predecessor's pending list."""
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"


def idempotent_handler(
    session_factory: async_sessionmaker[AsyncSession], *, group: str, apply: Apply
) -> Handler:
    """A handler that runs ``apply`` at most once per event id for ``group``, in one transaction
    with the inbox row: a redelivered event commits nothing twice."""

    async def handle(envelope: Envelope) -> None:
        async with session_factory() as session, session.begin():
            if await mark_processed_once(session, group=group, event_id=envelope.id):
                await apply(session, envelope)

    return handle


class ConsumerRunner:
    def __init__(
        self,
        bus: EventBus,
        *,
        group: str,
        categories: Sequence[str],
        handler: Handler,
        settings: EventSettings,
        consumer: str | None = None,
        tracer: Tracer | None = None,
        transient_errors: tuple[type[BaseException], ...] = TRANSIENT_ERRORS,
    ) -> None:
        self.bus = bus
        self.group = group
        self.categories = tuple(categories)
        self.handler = handler
        self.max_deliveries = settings.event_max_deliveries
        self.consumer = consumer or default_consumer_name()
        self.tracer = tracer or trace.get_tracer(__name__)
        self.transient_errors = transient_errors
        self.retry_delay = max(0.01, settings.event_retry_delay_seconds)
        self._stop = asyncio.Event()

    async def run_until(self, stop: asyncio.Event) -> None:
        """Consume until ``stop`` is set; the message in hand is finished and acknowledged first.
        Cancelling the task instead is a crash: nothing in hand is acknowledged."""
        self._stop = stop
        logger.info(
            "event consumer started",
            group=self.group,
            consumer=self.consumer,
            categories=list(self.categories),
            transport=self.bus.transport,
        )
        sampler = asyncio.create_task(self._sample_lag(stop))
        try:
            await self.bus.consume(
                group=self.group,
                consumer=self.consumer,
                categories=self.categories,
                process=self.process,
                stop=stop,
            )
        finally:
            sampler.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sampler
        logger.info("event consumer stopped", group=self.group, consumer=self.consumer)

    async def _sample_lag(self, stop: asyncio.Event) -> None:
        """Keep the group's lag gauge current; every consumer of the group reports the same
        figure, so the gauge takes the highest of the live processes."""
        while not stop.is_set():
            try:
                backlog = await self.bus.backlog(group=self.group, categories=self.categories)
            except Exception as exc:  # noqa: BLE001 - a missed sample must not stop consuming
                logger.debug("consumer lag not sampled", error=repr(exc))
            else:
                for category, events in backlog.items():
                    CONSUMER_LAG.labels(self.group, category).set(events)
            await wait_event(stop, LAG_SAMPLE_SECONDS)

    async def process(self, received: Received) -> tuple[Outcome, str]:
        """Handle one delivery and record its outcome, duration and delay."""
        started = time.perf_counter()
        try:
            envelope = Envelope.from_json(received.payload)
        except InvalidEventError as exc:
            EVENTS_HANDLED.labels(self.group, UNREADABLE, Outcome.DEAD.value).inc()
            return _dead_letter(str(exc), stream=received.stream)
        outcome, reason = await self._process(envelope, received)
        EVENTS_HANDLED.labels(self.group, envelope.type, outcome.value).inc()
        EVENT_HANDLING_DURATION.labels(self.group, envelope.type).observe(
            time.perf_counter() - started
        )
        if outcome is not Outcome.RETRY:
            delay = (datetime.now(UTC) - envelope.time).total_seconds()
            EVENT_DELAY.labels(self.group, envelope.type).observe(max(0.0, delay))
        return outcome, reason

    async def _process(self, envelope: Envelope, received: Received) -> tuple[Outcome, str]:
        if received.delivery_count > self.max_deliveries:
            # Earlier deliveries never reported back (the process died mid-handler).
            reason = f"delivered {received.delivery_count} times, limit {self.max_deliveries}"
            return _dead_letter(reason, stream=received.stream, event_id=str(envelope.id))
        with (
            structlog.contextvars.bound_contextvars(
                event_id=str(envelope.id), event_type=envelope.type, consumer_group=self.group
            ),
            self.tracer.start_as_current_span(
                f"{envelope.type} process",
                context=trace_context(envelope.traceparent),
                kind=SpanKind.CONSUMER,
                attributes={
                    "messaging.system": self.bus.transport,
                    "messaging.operation.type": "process",
                    "messaging.destination.name": received.stream,
                    "messaging.consumer.group.name": self.group,
                    "messaging.message.id": str(envelope.id),
                    "messaging.delivery_count": received.delivery_count,
                },
                record_exception=False,
                set_status_on_exception=False,
            ) as span,
        ):
            try:
                await self._call_through_outages(envelope, span)
            except InvalidEventError as exc:
                span.record_exception(exc)
                span.set_status(Status(StatusCode.ERROR, str(exc)))
                return _dead_letter(str(exc), stream=received.stream, event_id=str(envelope.id))
            except Exception as exc:
                if self._is_transient(exc):
                    return Outcome.RETRY, repr(exc)  # stopping mid-outage: never a dead letter
                span.record_exception(exc)
                span.set_status(Status(StatusCode.ERROR, repr(exc)))
                last = received.delivery_count >= self.max_deliveries
                logger.exception(
                    "event handler failed",
                    deliveries=received.delivery_count,
                    next_step="dead-letter" if last else "retry",
                )
                return (Outcome.DEAD if last else Outcome.RETRY), repr(exc)
        return Outcome.ACK, ""

    def _is_transient(self, exc: Exception) -> bool:
        return isinstance(exc, self.transient_errors) or is_database_busy(exc)

    async def _call_through_outages(self, envelope: Envelope, span: trace.Span) -> None:
        """Call the handler, waiting out transient failures (until asked to stop)."""
        waited = 0
        while True:
            try:
                await self.handler(envelope)
            except Exception as exc:
                if not self._is_transient(exc) or self._stop.is_set():
                    raise
                delay = min(self.retry_delay * 2**waited, TRANSIENT_BACKOFF_CAP_SECONDS)
                span.add_event("dependency unavailable", {"error": repr(exc)})
                logger.warning(
                    "event handler's dependency unavailable; waiting",
                    error=repr(exc),
                    retry_in_seconds=delay,
                )
                waited += 1
                await wait_event(self._stop, delay)
            else:
                return


def _dead_letter(reason: str, **context: str) -> tuple[Outcome, str]:
    logger.error("event dead-lettered", reason=reason, **context)
    return Outcome.DEAD, reason
