"""What the event machinery reports: outcomes, durations and delays of handled events, each
group's backlog, the outbox's backlog and publish count, and the relay's place in a trace.
Real Redis (and NATS JetStream when TEST_NATS_URL is set), real PostgreSQL."""

from __future__ import annotations

import asyncio

import pytest
from opentelemetry.trace import SpanKind
from prometheus_client import REGISTRY
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from terrascale.common.events import Envelope, EventBus, OutboxRelay
from terrascale.common.events import consumer as consumer_module
from terrascale.common.events.schemas import InvalidEventError

from .harness import (
    Consumers,
    DemoConsumer,
    new_subject,
    record_all,
    recording_tracer,
    user_event,
    wait_until,
)


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def test_handled_events_are_counted_by_outcome_with_duration_and_delay(
    bus: EventBus, consumers: Consumers, demo: DemoConsumer
) -> None:
    good = [user_event(new_subject(), 0) for _ in range(2)]
    bad = user_event(new_subject(), 0)
    apply = demo.handler()

    async def handle(envelope: Envelope) -> None:
        if envelope.id == bad.id:
            raise InvalidEventError("refused by the test")
        await apply(envelope)

    labels = {"group": demo.group, "type": "user.updated"}
    consumers.start(group=demo.group, handler=handle)
    await bus.publish([*good, bad])

    async def all_handled() -> bool:
        return sample("terrascale_event_delay_seconds_count", **labels) == 3

    await wait_until(all_handled, what="three events handled")
    assert sample("terrascale_events_handled_total", **labels, outcome="ack") == 2
    assert sample("terrascale_events_handled_total", **labels, outcome="dead") == 1
    assert sample("terrascale_event_handling_duration_seconds_count", **labels) == 3
    assert 0 < sample("terrascale_event_delay_seconds_sum", **labels) < 10


async def test_backlog_counts_unread_and_in_hand_events_until_acknowledged(
    bus: EventBus, consumers: Consumers, demo: DemoConsumer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(consumer_module, "LAG_SAMPLE_SECONDS", 0.05)
    subject = new_subject()  # one subject: one partition, handled one at a time
    events = [user_event(subject, k) for k in range(5)]
    release = asyncio.Event()
    apply = demo.handler()

    async def handle(envelope: Envelope) -> None:
        await release.wait()
        await apply(envelope)

    consumers.start(group=demo.group, handler=handle)

    async def lag_is(expected: int) -> bool:
        backlog = await bus.backlog(group=demo.group, categories=["user"])
        gauge = sample("terrascale_consumer_lag_events", group=demo.group, category="user")
        return backlog == {"user": expected} and gauge == expected

    await wait_until(lambda: lag_is(0), what="an empty backlog")
    await bus.publish(events)
    await wait_until(lambda: lag_is(5), what="five events waiting, one of them in hand")
    release.set()
    await wait_until(lambda: lag_is(0), what="the backlog drained")


async def test_outbox_relay_reports_its_backlog_and_what_it_published(
    bus: EventBus, engine: AsyncEngine, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    relay = OutboxRelay(engine, bus, batch_size=1000)
    async with engine.connect() as connection:
        await relay.sample_backlog(connection)  # other tests' rows may wait in this database
        before = sample("terrascale_outbox_unpublished_events")
        await record_all(session_factory, [user_event(new_subject(), k) for k in range(4)])
        await asyncio.sleep(0.05)
        await relay.sample_backlog(connection)
        assert sample("terrascale_outbox_unpublished_events") == before + 4
        assert sample("terrascale_outbox_oldest_unpublished_age_seconds") >= 0.05
        published_before = sample("terrascale_outbox_published_events_total")
        while await relay.publish_batch(connection):
            pass
        assert sample("terrascale_outbox_published_events_total") >= published_before + 4
        await relay.sample_backlog(connection)
    assert sample("terrascale_outbox_unpublished_events") == 0
    assert sample("terrascale_outbox_oldest_unpublished_age_seconds") == 0


async def test_relay_publish_span_sits_between_the_writer_and_the_consumer(
    bus: EventBus,
    consumers: Consumers,
    demo: DemoConsumer,
    engine: AsyncEngine,
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    tracer, exporter = recording_tracer()
    with tracer.start_as_current_span("POST /users") as request_span:
        event = user_event(new_subject(), 0)
        await record_all(session_factory, [event])
    consumers.start(group=demo.group, handler=demo.handler(), tracer=tracer)
    relay = OutboxRelay(engine, bus, batch_size=1000, tracer=tracer)
    async with engine.connect() as connection:
        while await relay.publish_batch(connection):
            pass

    async def handled() -> bool:
        return any(s.name == "user.updated process" for s in exporter.get_finished_spans())

    await wait_until(handled, what="the event handled")
    spans = exporter.get_finished_spans()
    [publish] = [
        s
        for s in spans
        if s.name == "user.updated publish"
        and s.attributes is not None
        and s.attributes["messaging.message.id"] == str(event.id)
    ]
    [process] = [s for s in spans if s.name == "user.updated process"]
    request = request_span.get_span_context()
    assert publish.kind is SpanKind.PRODUCER
    assert publish.parent is not None
    assert publish.parent.span_id == request.span_id
    assert publish.context is not None
    assert process.parent is not None
    assert process.parent.span_id == publish.context.span_id
    assert process.context is not None
    assert process.context.trace_id == request.trace_id
