"""What only the Redis Streams transport has: leases shared fairly, raw entries, settings."""

from __future__ import annotations

import asyncio
import os
import uuid
from pathlib import Path

import pytest
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from terrascale.common.embedded import EmbeddedValkey
from terrascale.common.events import (
    ConsumerRunner,
    Envelope,
    EventSettings,
    RedisStreamsBus,
    connect_bus,
    create_event_redis,
    partition_for,
)
from terrascale.common.events.waiting import raise_if_cancelled, wait_event
from terrascale.common.settings import ServiceSettings
from terrascale.common.testing.helpers import free_port
from terrascale.common.testing.plugin import ServerAddresses

from .harness import Consumers, DemoConsumer, user_event, wait_until


async def lease_owners(bus: RedisStreamsBus, group: str) -> list[bytes | str | None]:
    prefix = bus.settings.event_key_prefix
    keys = [
        f"{prefix}events-lease:{group}:user:{index}"
        for index in range(bus.settings.event_partitions)
    ]
    return list(await bus.redis.mget(keys))


async def test_partitions_are_shared_fairly_and_taken_back_from_a_leaver(
    redis_bus: RedisStreamsBus, event_settings: EventSettings, demo: DemoConsumer
) -> None:
    consumers = Consumers(redis_bus, event_settings)
    first = consumers.start(group=demo.group, handler=demo.handler(), consumer="first")
    consumers.start(group=demo.group, handler=demo.handler(), consumer="second")

    async def split_evenly() -> bool:
        owners = await lease_owners(redis_bus, demo.group)
        return sorted(owners, key=str) == [b"first", b"first", b"second", b"second"]

    await wait_until(split_evenly, what="two leases each")
    await first.stop_gracefully()

    async def all_second() -> bool:
        return await lease_owners(redis_bus, demo.group) == [b"second"] * 4

    await wait_until(all_second, what="the remaining consumer to hold every lease")
    events = [user_event(uuid.uuid4().int % 10**15 + 1, 0) for _ in range(8)]
    await redis_bus.publish(events)

    async def applied() -> bool:
        return len(await demo.applied()) == len(events)

    await wait_until(applied, what="every event")
    await consumers.close()


async def test_unreadable_entry_is_dead_lettered_at_once(
    redis_bus: RedisStreamsBus, event_settings: EventSettings, demo: DemoConsumer
) -> None:
    one_partition = event_settings.model_copy(update={"event_partitions": 1})
    single = RedisStreamsBus(redis_bus.redis, one_partition)
    valid = user_event(1, 0)
    stream = single.stream_key("user", 0)
    await single.redis.xadd(stream, {b"envelope": b"{not json"})
    await single.redis.xadd(stream, {b"something": b"else"})
    await single.redis.xadd(stream, {b"envelope": valid.to_json()})
    consumers = Consumers(single, one_partition)
    consumers.start(group=demo.group, handler=demo.handler())

    async def settled() -> bool:
        return len(await single.dead_letters("user")) == 2 and len(await demo.applied()) == 1

    await wait_until(settled, what="two dead letters and one applied event")
    dead = await single.dead_letters("user")
    assert all(letter.delivery_count == 1 for letter in dead)
    assert all("malformed envelope" in letter.reason for letter in dead)
    assert dead[0].payload == b"{not json"
    assert dead[0].stream == stream
    pending = await redis_bus.redis.xpending(stream, demo.group)
    assert pending["pending"] == 0
    await consumers.close()


async def test_connect_bus_builds_the_configured_transport(
    test_servers: ServerAddresses, event_settings: EventSettings
) -> None:
    service = ServiceSettings(
        _env_file=None,  # pyright: ignore[reportCallIssue]
        redis_host=test_servers.redis.host,
        redis_port=test_servers.redis.port,
        redis_db=test_servers.redis.db,
        redis_password="secret-not-used",  # pyright: ignore[reportArgumentType]
    )
    assert (
        create_event_redis(service, event_settings).connection_pool.connection_kwargs["password"]
        == "secret-not-used"
    )
    service = service.model_copy(update={"redis_password": None})
    bus = await connect_bus(event_settings, service)
    try:
        assert isinstance(bus, RedisStreamsBus)
        event = user_event(7, 0)
        await bus.publish([event])
        await bus.publish([])
        partition = partition_for("7", event_settings.event_partitions)
        [raw] = await bus.history("user", partition)
        assert Envelope.from_json(raw) == event
        assert await bus.stream_length("user", partition) == 1
    finally:
        await bus.close()
    if not os.environ.get("TEST_NATS_URL"):
        return
    nats_settings = event_settings.model_copy(update={"event_bus": "nats"})
    bus = await connect_bus(nats_settings, service)
    try:
        assert bus.transport == "nats"
        assert await bus.stream_length("user", 0) == 0
        assert await bus.history("user", 0) == []
        assert await bus.dead_letters("user") == []
    finally:
        await bus.close()


def test_a_client_that_retries_is_refused(event_settings: EventSettings) -> None:
    with pytest.raises(ValueError, match="must not retry"):
        RedisStreamsBus(Redis(), event_settings)


async def test_a_swallowed_cancellation_is_raised_again() -> None:
    entered = asyncio.Event()

    async def swallowing_loop() -> None:
        while True:
            raise_if_cancelled()
            try:
                entered.set()
                await asyncio.sleep(10)
            except asyncio.CancelledError:
                pass  # what asyncio.wait_for may do before Python 3.12

    task = asyncio.create_task(swallowing_loop())
    await entered.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_wait_event_returns_early_when_set() -> None:
    event = asyncio.Event()
    asyncio.get_running_loop().call_later(0.01, event.set)
    async with asyncio.timeout(1):
        await wait_event(event, 30)
    await wait_event(event, 30)  # already set: no wait
    await wait_event(asyncio.Event(), 0)


async def test_consumer_rides_out_dropped_connections(
    test_servers: ServerAddresses, event_settings: EventSettings, demo: DemoConsumer
) -> None:
    """Connections cut mid-read, mid-ack and mid-renewal: every event still applied, in order.
    Only this bus's connections are killed, so the shared Redis is left alone."""
    name = f"events-test-{uuid.uuid4().hex[:8]}"
    address = test_servers.redis
    bus = RedisStreamsBus(
        Redis(
            host=address.host,
            port=address.port,
            db=address.db,
            socket_timeout=2,
            client_name=name,
            retry=Retry(NoBackoff(), retries=0),
        ),
        event_settings,
    )
    admin = Redis(host=address.host, port=address.port, db=address.db)
    consumers = Consumers(bus, event_settings)
    subjects = [uuid.uuid4().int % 10**15 + 1 for _ in range(4)]
    events = [user_event(subject, k) for k in range(30) for subject in subjects]
    try:
        consumers.start(group=demo.group, handler=demo.handler())
        killed = 0
        for start in range(0, len(events), 20):
            while True:  # as the relay does: publish again (duplicates are fine) until stored
                try:
                    await bus.publish(events[start : start + 20])
                    break
                except RedisError:
                    await asyncio.sleep(0.01)
            await asyncio.sleep(0.05)
            for client in await admin.client_list():
                if client.get("name") == name:
                    await admin.client_kill_filter(_id=client["id"])
                    killed += 1
        assert killed > 0

        async def all_applied() -> bool:
            return len(await demo.applied()) >= len(events)

        await wait_until(all_applied, what="every event despite the dropped connections")
        applied = await demo.applied()
        assert sorted(a.event_id for a in applied) == sorted(e.id for e in events)
        for subject in subjects:
            positions = [a.position for a in applied if a.subject == str(subject)]
            assert positions == list(range(30))
    finally:
        await consumers.close()
        await bus.close()
        await admin.aclose()


async def test_consumer_waits_for_an_unreachable_redis_until_stopped(
    event_settings: EventSettings,
) -> None:
    refused_port = free_port()
    bus = RedisStreamsBus(
        Redis(port=refused_port, socket_connect_timeout=0.2, retry=Retry(NoBackoff(), retries=0)),
        event_settings,
    )

    async def handle(_envelope: Envelope) -> None:
        raise AssertionError("nothing to handle")

    runner = ConsumerRunner(
        bus, group="g", categories=["user"], handler=handle, settings=event_settings
    )
    stop = asyncio.Event()
    task = asyncio.create_task(runner.run_until(stop))
    await asyncio.sleep(0.3)
    assert not task.done()  # still trying
    stop.set()
    async with asyncio.timeout(2):
        await task
    await bus.close()


async def test_consumer_recreates_its_group_when_redis_lost_the_stream(
    redis_bus: RedisStreamsBus, event_settings: EventSettings, demo: DemoConsumer
) -> None:
    consumers = Consumers(redis_bus, event_settings)
    consumers.start(group=demo.group, handler=demo.handler())
    subject = uuid.uuid4().int % 10**15 + 1
    first, second = user_event(subject, 0), user_event(subject, 1)
    await redis_bus.publish([first])

    async def applied(count: int) -> bool:
        return len(await demo.applied()) >= count

    await wait_until(lambda: applied(1), what="the first event")
    partition = partition_for(str(subject), event_settings.event_partitions)
    await redis_bus.redis.delete(redis_bus.stream_key("user", partition))  # as a flushed Redis
    await redis_bus.publish([second])
    await wait_until(lambda: applied(2), what="the event after the stream was lost")
    assert [a.position for a in await demo.applied()] == [0, 1]
    await consumers.close()


@pytest.mark.slow
async def test_after_a_redis_restart_the_consumer_takes_its_own_entries_back_at_once(
    event_settings: EventSettings, demo: DemoConsumer, tmp_path: Path
) -> None:
    """Redis restarts (from its append-only file) while an event is in hand: its
    acknowledgement fails, and the consumer handles what it had read again at once, not after
    EVENT_CLAIM_IDLE_SECONDS as it would a dead consumer's entries."""
    valkey = EmbeddedValkey(
        tmp_path, persist=True, config={"appendonly": "yes", "appendfsync": "always"}
    )
    address = valkey.start()
    settings = event_settings.model_copy(update={"event_claim_idle_seconds": 30.0})
    bus = RedisStreamsBus(
        Redis(
            host=address.host,
            port=address.port,
            socket_timeout=2,
            socket_connect_timeout=0.5,
            retry=Retry(NoBackoff(), retries=0),
        ),
        settings,
    )
    subject = uuid.uuid4().int % 10**15 + 1
    events = [user_event(subject, k) for k in range(3)]
    in_hand, release = asyncio.Event(), asyncio.Event()
    apply = demo.handler()

    async def handle(envelope: Envelope) -> None:
        if envelope.id == events[0].id and not in_hand.is_set():
            in_hand.set()
            await release.wait()
        await apply(envelope)

    async def all_applied() -> bool:
        return len(await demo.applied()) >= len(events)

    consumers = Consumers(bus, settings)
    try:
        consumers.start(group=demo.group, handler=handle)
        await bus.publish(events)
        await asyncio.wait_for(in_hand.wait(), 10)
        await asyncio.to_thread(valkey.kill)
        release.set()  # handled; the acknowledgement cannot reach Redis
        await asyncio.sleep(0.3)
        await asyncio.to_thread(valkey.start)
        took = await wait_until(all_applied, within=15, what="the events read before")
        assert took < 15  # far below the claim idle time
        assert [a.event_id for a in await demo.applied()] == [e.id for e in events]
    finally:
        await consumers.close()
        await bus.close()
        valkey.stop()
