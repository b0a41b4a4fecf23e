"""The replicator on its own, over real Redis Streams: it copies only the events produced in its
source region, keeps their ids and marks where they came from."""

from __future__ import annotations

import asyncio

from terrascale.common.events import Envelope, EventSettings, FollowCreated, UserCreated
from terrascale.common.testing.plugin import ServerAddresses
from terrascale.regions.local import wait_for
from terrascale.regions.replicator import RegionBus, Replicator


def region_bus(name: str, servers: ServerAddresses, prefix: str) -> RegionBus:
    events = EventSettings.model_validate(
        {"event_key_prefix": f"{prefix}{name}:", "event_partitions": 2, "event_poll_seconds": 0.1}
    )
    return RegionBus(name=name, redis_url=servers.redis.url, events=events)


async def history(bus: RegionBus, category: str) -> list[Envelope]:
    connected = bus.connect()
    try:
        return [
            Envelope.from_json(raw)
            for partition in range(bus.events.event_partitions)
            for raw in await connected.history(category, partition)
        ]
    finally:
        await connected.close()


async def test_only_events_made_in_the_source_region_are_copied(
    test_servers: ServerAddresses, redis_key_prefix: str
) -> None:
    eu = region_bus("eu", test_servers, redis_key_prefix)
    us = region_bus("us", test_servers, redis_key_prefix)
    made_here = Envelope.wrap(UserCreated(user_id=11, username="ann"), source="user-service")
    copied_in = Envelope.wrap(
        FollowCreated(follower_id=12, followee_id=11), source="graph-service"
    ).model_copy(update={"replicated_from": "us"})
    source = eu.connect()
    await source.publish([made_here, copied_in])
    await source.close()

    stop = asyncio.Event()
    running = asyncio.create_task(Replicator(source=eu, target=us).run_until(stop))

    async def copied() -> bool:
        return len(await history(us, "user")) == 1

    try:
        await wait_for(copied, seconds=20, what="the copy in us")
        await asyncio.sleep(0.5)  # time enough for a wrong copy of the follow to arrive
    finally:
        stop.set()
        await running
    [copy] = await history(us, "user")
    assert copy.id == made_here.id  # the target's inboxes recognise a redelivered copy
    assert copy.replicated_from == "eu"
    assert copy.model_copy(update={"replicated_from": None}) == made_here
    assert await history(us, "follow") == []  # us's own follow does not go back to us
