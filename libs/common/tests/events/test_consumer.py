"""The consumer runner over each bus: crash takeover, dead letters, order, shutdown, trimming,
trace context. Real Redis, real NATS JetStream (when TEST_NATS_URL is set), real PostgreSQL."""

from __future__ import annotations

import asyncio
import uuid
from collections import defaultdict

from opentelemetry.trace import SpanKind
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from terrascale.common.events import (
    Envelope,
    EventBus,
    EventSettings,
    OutboxRelay,
    partition_for,
)

from .conftest import BusFactory
from .harness import (
    Applied,
    Consumers,
    DemoConsumer,
    RunningConsumer,
    new_subject,
    position_of,
    record_all,
    recording_tracer,
    user_event,
    wait_until,
)


def interleaved(subjects: list[int], per_subject: int) -> list[Envelope]:
    return [user_event(subject, k) for k in range(per_subject) for subject in subjects]


def assert_in_order_once(applied: list[Applied], events: list[Envelope]) -> None:
    assert sorted(a.event_id for a in applied) == sorted(e.id for e in events)
    positions: dict[str, list[int]] = defaultdict(list)
    for a in applied:
        positions[a.subject].append(a.position)
    expected: dict[str, list[int]] = defaultdict(list)
    for e in events:
        expected[e.subject].append(position_of(e))
    assert positions == expected


async def count_applied(demo: DemoConsumer, expected: int) -> bool:
    return len(await demo.applied()) >= expected


async def test_killed_consumer_work_is_claimed_and_applied_once(
    bus: EventBus, consumers: Consumers, demo: DemoConsumer
) -> None:
    events = interleaved([new_subject() for _ in range(6)], 8)
    target = events[21]
    died = asyncio.Event()
    victims: list[RunningConsumer] = []
    apply = demo.handler()

    def handler_of(name: str):
        async def handle(envelope: Envelope) -> None:
            await apply(envelope)  # committed: inbox row and effect
            if envelope.id == target.id and not died.is_set():
                died.set()
                victims.append(running[name])
                await asyncio.Event().wait()  # dies here, before the ack

        return handle

    running: dict[str, RunningConsumer] = {}
    running["a"] = consumers.start(group=demo.group, handler=handler_of("a"))
    running["b"] = consumers.start(group=demo.group, handler=handler_of("b"))
    await bus.publish(events)
    await asyncio.wait_for(died.wait(), 10)
    await victims[0].kill()

    await wait_until(lambda: count_applied(demo, len(events)), what="the survivor to catch up")
    await asyncio.sleep(0.1)  # a duplicate application would show up now
    assert_in_order_once(await demo.applied(), events)
    assert demo.calls[target.id] == 2  # redelivered after the crash; the inbox said no


async def test_poison_event_is_dead_lettered_and_later_events_continue(
    bus: EventBus, consumers: Consumers, demo: DemoConsumer, event_settings: EventSettings
) -> None:
    poisoned, other = new_subject(), new_subject()
    events = [user_event(poisoned, k) for k in range(4)] + [user_event(other, k) for k in range(3)]
    poison = events[1]
    apply = demo.handler()

    async def handle(envelope: Envelope) -> None:
        if envelope.id == poison.id:
            demo.calls[envelope.id] += 1
            raise RuntimeError("cannot apply this one")
        await apply(envelope)

    consumers.start(group=demo.group, handler=handle)
    await bus.publish(events)

    async def dead_lettered() -> bool:
        return len(await bus.dead_letters("user")) == 1

    await wait_until(dead_lettered, what="the dead letter")
    await wait_until(lambda: count_applied(demo, len(events) - 1), what="the later events")
    [dead] = await bus.dead_letters("user")
    assert Envelope.from_json(dead.payload).id == poison.id
    assert dead.delivery_count == event_settings.event_max_deliveries
    assert dead.group == demo.group
    assert "cannot apply this one" in dead.reason
    assert demo.calls[poison.id] == event_settings.event_max_deliveries
    assert_in_order_once(await demo.applied(), [e for e in events if e.id != poison.id])


async def test_event_no_handler_can_understand_is_dead_lettered_at_once(
    bus: EventBus, consumers: Consumers, demo: DemoConsumer
) -> None:
    known = user_event(new_subject(), 0)
    unknown = Envelope.model_validate(
        {**known.model_dump(mode="json"), "id": str(uuid.uuid4()), "type": "user.exploded"}
    )
    apply = demo.handler()
    seen: list[uuid.UUID] = []

    async def handle(envelope: Envelope) -> None:
        seen.append(envelope.id)
        envelope.payload()  # refuses an unknown (type, version)
        await apply(envelope)

    consumers.start(group=demo.group, handler=handle)
    await bus.publish([unknown, known])

    async def dead_lettered() -> bool:
        return len(await bus.dead_letters("user")) == 1

    await wait_until(dead_lettered, what="the dead letter")
    await wait_until(lambda: count_applied(demo, 1), what="the known event")
    [dead] = await bus.dead_letters("user")
    assert dead.delivery_count == 1
    assert "unknown event type 'user.exploded'" in dead.reason
    assert seen.count(unknown.id) == 1


async def test_order_per_subject_holds_under_concurrent_writes_with_two_consumers(
    bus: EventBus,
    consumers: Consumers,
    demo: DemoConsumer,
    engine: AsyncEngine,
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    subjects = [new_subject() for _ in range(12)]
    per_subject = 25
    written: list[Envelope] = []

    async def writer(subject: int) -> None:
        for k in range(per_subject):  # one transaction per event, like a request each
            event = user_event(subject, k)
            await record_all(session_factory, [event])
            written.append(event)

    relay = OutboxRelay(engine, bus, poll_seconds=0.01)
    stop_relay = asyncio.Event()
    relay_task = asyncio.create_task(relay.run_until(stop_relay))
    consumers.start(group=demo.group, handler=demo.handler())
    consumers.start(group=demo.group, handler=demo.handler())
    await asyncio.gather(*(writer(subject) for subject in subjects))

    await wait_until(
        lambda: count_applied(demo, len(written)), within=20, what="every event applied"
    )
    stop_relay.set()
    await relay_task
    assert_in_order_once(await demo.applied(), written)


async def test_graceful_shutdown_finishes_the_message_in_hand(
    bus: EventBus, make_bus: BusFactory, demo: DemoConsumer, event_settings: EventSettings
) -> None:
    # A long claim idle time: the successor must not need it to pick up where we stopped.
    patient = await make_bus(event_claim_idle_seconds=5.0)
    consumers = Consumers(patient, event_settings)
    subject = new_subject()
    events = [user_event(subject, k) for k in range(6)]
    slow = events[0]
    started = asyncio.Event()
    apply = demo.handler()

    async def handle(envelope: Envelope) -> None:
        if envelope.id == slow.id:
            started.set()
            await asyncio.sleep(0.3)
        await apply(envelope)

    first = consumers.start(group=demo.group, handler=handle)
    await patient.publish(events)
    await asyncio.wait_for(started.wait(), 10)
    await first.stop_gracefully()
    assert [a.event_id for a in await demo.applied()] == [slow.id]

    consumers.start(group=demo.group, handler=handle)
    took = await wait_until(lambda: count_applied(demo, len(events)), within=4, what="the rest")
    assert took < 4
    assert demo.calls[slow.id] == 1
    assert_in_order_once(await demo.applied(), events)
    await consumers.close()
    assert bus.transport == patient.transport


async def test_streams_are_trimmed_to_about_maxlen(
    make_bus: BusFactory, event_settings: EventSettings
) -> None:
    small = await make_bus(event_stream_maxlen=20)
    subject = new_subject()
    for batch in range(6):
        await small.publish([user_event(subject, batch * 50 + k) for k in range(50)])
    partition = partition_for(str(subject), event_settings.event_partitions)
    length = await small.stream_length("user", partition)
    assert 20 <= length < 300
    if small.transport == "nats":
        assert length == 20
    history = [Envelope.from_json(raw) for raw in await small.history("user", partition)]
    assert [position_of(e) for e in history] == list(range(300 - length, 300))


async def test_handler_span_is_a_child_of_the_producer_span(
    bus: EventBus, consumers: Consumers, demo: DemoConsumer
) -> None:
    tracer, exporter = recording_tracer()
    with tracer.start_as_current_span("POST /users") as request_span:
        event = user_event(new_subject(), 0)
    apply = demo.handler()

    async def handle(envelope: Envelope) -> None:
        with tracer.start_as_current_span("inside the handler"):
            await apply(envelope)

    consumers.start(group=demo.group, handler=handle, tracer=tracer)
    await bus.publish([event])
    await wait_until(lambda: count_applied(demo, 1), what="the event")

    producer = request_span.get_span_context()
    [process] = [s for s in exporter.get_finished_spans() if s.name == "user.updated process"]
    assert process.kind is SpanKind.CONSUMER
    assert process.context is not None
    assert process.parent is not None
    assert process.context.trace_id == producer.trace_id
    assert process.parent.span_id == producer.span_id
    assert process.attributes is not None
    assert process.attributes["messaging.consumer.group.name"] == demo.group
    assert process.attributes["messaging.system"] == bus.transport
    [inner] = [s for s in exporter.get_finished_spans() if s.name == "inside the handler"]
    assert inner.parent is not None
    assert inner.parent.span_id == process.context.span_id
