"""Events in and out: the worker projects ``user.created`` from the bus (once per event), and
the HTTP app's relay publishes ``follow.created`` / ``follow.deleted`` from the outbox."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from fastapi import FastAPI
from httpx import AsyncClient

from terrascale.common.events import (
    Envelope,
    EventBus,
    EventSettings,
    UserCreated,
    UserUpdated,
    connect_bus,
    partition_for,
)
from terrascale.common.ids import decode_id
from terrascale.common.testing.helpers import serve_app
from terrascale.graph.app import create_worker
from terrascale.graph.config import GraphSettings
from terrascale.graph.consumer import CONSUMER_GROUP

KnownUser = Callable[[], Awaitable[int]]
Auth = Callable[[int], dict[str, str]]
Sql = Callable[..., Awaitable[list[Any]]]


@pytest.fixture
async def bus(settings: GraphSettings, event_settings: EventSettings) -> AsyncIterator[EventBus]:
    connected = await connect_bus(event_settings, settings)
    yield connected
    await connected.close()


async def eventually(check: Callable[[], Awaitable[bool]], *, seconds: float = 10) -> None:
    for _ in range(int(seconds / 0.05)):
        if await check():
            return
        await asyncio.sleep(0.05)
    pytest.fail("condition not met in time")


async def test_worker_projects_user_created_once(
    settings: GraphSettings,
    event_settings: EventSettings,
    bus: EventBus,
    new_id: Callable[[], int],
    sql: Sql,
) -> None:
    user_id = new_id()

    def user_created() -> Envelope:
        return Envelope.wrap(UserCreated(user_id=user_id, username="ada"), source="user-service")

    created = user_created()
    updated = Envelope.wrap(
        UserUpdated(user_id=user_id, display_name="Ada", bio=None), source="user-service"
    )
    # One subject, so one partition, handled in this order: the duplicate (a relay retry), an
    # event this service keeps nothing of, and a last one whose handling proves the rest done.
    last = user_created()
    async with serve_app(create_worker(settings, event_settings)):
        await bus.publish([created, created, updated, last])

        async def last_handled() -> bool:
            return bool(await sql("SELECT 1 FROM processed_event WHERE event_id = :id", id=last.id))

        await eventually(last_handled)

    [row] = await sql("SELECT username, created_at FROM known_user WHERE id = :id", id=user_id)
    assert row.username == "ada"
    assert row.created_at == decode_id(user_id).created_at
    inbox = await sql(
        "SELECT event_id, consumer_group FROM processed_event WHERE event_id IN (:a, :b, :c)",
        a=created.id,
        b=updated.id,
        c=last.id,
    )
    assert sorted((r.event_id, r.consumer_group) for r in inbox) == sorted(
        [(created.id, CONSUMER_GROUP), (last.id, CONSUMER_GROUP)]
    )
    assert await bus.dead_letters("user") == []


async def test_worker_dead_letters_an_invalid_user_created(
    settings: GraphSettings, event_settings: EventSettings, bus: EventBus, sql: Sql
) -> None:
    bogus = Envelope.wrap(UserCreated(user_id=5, username="x"), source="user-service")
    bogus = bogus.model_copy(update={"data": {"user_id": "not-an-id"}})
    async with serve_app(create_worker(settings, event_settings)):
        await bus.publish([bogus])

        async def dead() -> bool:
            return bool(await bus.dead_letters("user"))

        await eventually(dead)
    assert await sql("SELECT 1 FROM processed_event WHERE event_id = :id", id=bogus.id) == []


async def test_relay_publishes_follow_events_in_order(
    *,
    app: FastAPI,
    client: AsyncClient,
    bus: EventBus,
    event_settings: EventSettings,
    known_user: KnownUser,
    auth: Auth,
) -> None:
    alice, bob = await known_user(), await known_user()
    await client.put(f"/users/{alice}/following/{bob}", headers=auth(alice))
    await client.put(f"/users/{alice}/following/{bob}", headers=auth(alice))  # no event
    await client.delete(f"/users/{alice}/following/{bob}", headers=auth(alice))
    partition = partition_for(str(alice), event_settings.event_partitions)

    async def mine() -> list[Envelope]:
        published = [Envelope.from_json(raw) for raw in await bus.history("follow", partition)]
        return [e for e in published if e.subject == str(alice)]

    async def both_published() -> bool:
        return len(await mine()) >= 2

    await eventually(both_published)
    events = await mine()
    assert [(e.type, e.source) for e in events] == [
        ("follow.created", "graph-service"),
        ("follow.deleted", "graph-service"),
    ]
    assert events[0].data == {"follower_id": str(alice), "followee_id": str(bob)}
