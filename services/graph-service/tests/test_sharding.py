"""The follow graph over four physical databases: each side of a follow on its owner's shard,
the followee's side repaired from the event when the request could not write it, and a shard
moved while follows change (ADR 0013)."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import UTC, datetime

import pytest
from alembic import command
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from httpx import ASGITransport, AsyncClient
from sqlalchemy import delete, insert, text
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

from terrascale.common.events import Envelope, EventSettings
from terrascale.common.ids import compose_id
from terrascale.common.migrations import alembic_config
from terrascale.common.resharding import move_shard
from terrascale.common.sharding import OWNERSHIP, ShardedDatabases, logical_shard
from terrascale.common.testing.plugin import ServerAddresses, fresh_database
from terrascale.graph.app import create_app
from terrascale.graph.cli import SCRIPT_LOCATION
from terrascale.graph.config import GraphSettings
from terrascale.graph.consumer import graph_events_handler
from terrascale.graph.models import SHARDED_TABLES

Auth = Callable[[int], dict[str, str]]
KnownOn = Callable[[int], Awaitable[int]]
Placement = tuple[list[int], list[int]]  # (following_edge, follower_edge) rows per database


def user_on(shard: int) -> int:
    return compose_id(created_at=datetime.now(UTC), shard=shard, sequence=random.randrange(1024))


@pytest.fixture(scope="module")
def shard_urls(test_servers: ServerAddresses) -> Iterator[list[URL]]:
    with (
        fresh_database(test_servers.postgres, prefix="test_graph_s0") as s0,
        fresh_database(test_servers.postgres, prefix="test_graph_s1") as s1,
        fresh_database(test_servers.postgres, prefix="test_graph_s2") as s2,
        fresh_database(test_servers.postgres, prefix="test_graph_s3") as s3,
    ):
        urls = [s0, s1, s2, s3]
        for url in urls:
            config = alembic_config(script_location=SCRIPT_LOCATION, database_url=url)
            command.upgrade(config, "head")
        yield urls


@pytest.fixture
async def engines(shard_urls: list[URL]) -> AsyncIterator[list[AsyncEngine]]:
    opened = [create_async_engine(url, poolclass=NullPool) for url in shard_urls]
    yield opened
    for engine in opened:
        await engine.dispose()


@pytest.fixture
async def sharded_app(
    shard_urls: list[URL],
    make_settings: Callable[..., GraphSettings],
    event_settings: EventSettings,
) -> AsyncIterator[FastAPI]:
    settings = make_settings(
        database_url=shard_urls[0].render_as_string(hide_password=False),
        shard_databases=[url.render_as_string(hide_password=False) for url in shard_urls[1:]],
        shard_map_refresh_seconds=0.2,
        db_pool_size=2,
        db_max_overflow=4,
    )
    application = create_app(settings, event_settings)
    async with LifespanManager(application):
        yield application


@pytest.fixture
async def client(sharded_app: FastAPI) -> AsyncIterator[AsyncClient]:
    transport = ASGITransport(app=sharded_app)
    async with AsyncClient(transport=transport, base_url="http://testserver") as c:
        yield c


@pytest.fixture
def known(engines: list[AsyncEngine]) -> KnownOn:
    """Make a user on ``shard`` the projection knows; it lives in the service's own database."""

    async def make(shard: int) -> int:
        user_id = user_on(shard)
        async with engines[0].begin() as connection:
            await connection.execute(
                text("INSERT INTO known_user (id, username, created_at) VALUES (:id, :n, now())"),
                {"id": user_id, "n": f"u{user_id}"[:30]},
            )
        return user_id

    return make


async def rows(engine: AsyncEngine, sql: str, **params: object) -> int:
    async with engine.connect() as connection:
        return int(await connection.scalar(text(sql), params) or 0)


async def edges_by_database(engines: list[AsyncEngine], follower: int, followee: int) -> Placement:
    following = [
        await rows(
            engine,
            "SELECT count(*) FROM following_edge WHERE follower_id = :a AND followee_id = :b",
            a=follower,
            b=followee,
        )
        for engine in engines
    ]
    followers = [
        await rows(
            engine,
            "SELECT count(*) FROM follower_edge WHERE followee_id = :b AND follower_id = :a",
            a=follower,
            b=followee,
        )
        for engine in engines
    ]
    return following, followers


async def test_each_side_of_a_follow_lives_on_its_owners_shard(
    client: AsyncClient, engines: list[AsyncEngine], known: KnownOn, auth: Auth
) -> None:
    follower, followee = await known(5), await known(600)  # databases 0 and 2
    followed = await client.put(f"/users/{follower}/following/{followee}", headers=auth(follower))
    assert followed.status_code == 200
    assert await edges_by_database(engines, follower, followee) == ([1, 0, 0, 0], [0, 0, 1, 0])
    assert (await client.get(f"/users/{followee}/counts")).json()["followers"] == 1
    assert (await client.get(f"/users/{follower}/counts")).json()["following"] == 1
    listed = (await client.get(f"/users/{followee}/followers")).json()["items"]
    assert [int(item["user_id"]) for item in listed] == [follower]
    reverse = (await client.get(f"/users/{followee}/relationship/{follower}")).json()
    assert reverse["followed_by"] is True

    gone = await client.delete(f"/users/{follower}/following/{followee}", headers=auth(follower))
    assert gone.status_code == 200
    assert await edges_by_database(engines, follower, followee) == ([0] * 4, [0] * 4)
    assert (await client.get(f"/users/{followee}/counts")).json()["followers"] == 0


async def test_a_follow_list_import_reaches_every_database(
    client: AsyncClient, engines: list[AsyncEngine], known: KnownOn, auth: Auth
) -> None:
    follower = await known(300)
    targets = [await known(shard) for shard in (1, 400, 700, 1000)]
    response = await client.post(
        f"/users/{follower}/following",
        json={"user_ids": [str(t) for t in targets]},
        headers=auth(follower),
    )
    assert response.status_code == 200
    for database, target in enumerate(targets):
        following, followers = await edges_by_database(engines, follower, target)
        assert following == [0, 1, 0, 0]
        assert followers == [1 if index == database else 0 for index in range(4)]
        assert (await client.get(f"/users/{target}/counts")).json()["followers"] == 1
    assert (await client.get(f"/users/{follower}/counts")).json()["following"] == 4


async def test_the_event_repairs_a_followee_side_the_request_could_not_write(
    sharded_app: FastAPI,
    client: AsyncClient,
    engines: list[AsyncEngine],
    known: KnownOn,
    auth: Auth,
) -> None:
    follower, followee = await known(10), await known(900)  # databases 0 and 3
    shards: ShardedDatabases = sharded_app.state.shards
    shard = logical_shard(followee)
    async with engines[3].begin() as connection:  # the followee's shard is mid-move
        await connection.execute(delete(OWNERSHIP).where(OWNERSHIP.c.shard == shard))
    await shards.reload()

    followed = await client.put(f"/users/{follower}/following/{followee}", headers=auth(follower))
    assert followed.status_code == 200  # the follow itself is stored
    assert await edges_by_database(engines, follower, followee) == ([1, 0, 0, 0], [0] * 4)

    async with engines[3].begin() as connection:
        await connection.execute(insert(OWNERSHIP).values(shard=shard, epoch=2))
    await shards.reload()
    async with engines[0].connect() as connection:
        payload = await connection.scalar(
            text("SELECT payload FROM outbox_event WHERE subject = :s"), {"s": str(follower)}
        )
    handle = graph_events_handler(shards)
    for _ in range(2):  # a redelivery changes nothing
        await handle(Envelope.model_validate(payload))
    assert await edges_by_database(engines, follower, followee) == ([1, 0, 0, 0], [0, 0, 0, 1])
    assert (await client.get(f"/users/{followee}/counts")).json()["followers"] == 1


async def test_a_graph_shard_moves_while_follows_change_and_counts_stay_exact(
    sharded_app: FastAPI,
    client: AsyncClient,
    engines: list[AsyncEngine],
    known: KnownOn,
    auth: Auth,
) -> None:
    star = await known(77)  # database 0
    fans = [await known(random.randrange(1024)) for _ in range(12)]
    failures: list[int] = []
    stop = asyncio.Event()

    async def churn(fan: int) -> None:
        while not stop.is_set():
            for method in ("PUT", "DELETE", "PUT"):
                response = await client.request(
                    method, f"/users/{fan}/following/{star}", headers=auth(fan)
                )
                if response.status_code != 200:
                    failures.append(response.status_code)

    tasks = [asyncio.create_task(churn(fan)) for fan in fans]
    await asyncio.sleep(0.3)
    report = await move_shard(
        shard=logical_shard(star),
        engines=engines,
        target=1,
        tables=SHARDED_TABLES,
        drain_seconds=0.5,
    )
    await asyncio.sleep(0.3)
    stop.set()
    await asyncio.gather(*tasks)
    print(report.to_text())  # the figures, with pytest -s

    assert failures == []
    assert report.tables["follower_edge"].rows > 0
    shards: ShardedDatabases = sharded_app.state.shards
    assert shards.map.owner(logical_shard(star)) == 1
    truth = 0
    for engine in engines:
        truth += await rows(
            engine, "SELECT count(*) FROM following_edge WHERE followee_id = :s", s=star
        )
    copies = await rows(
        engines[1], "SELECT count(*) FROM follower_edge WHERE followee_id = :s", s=star
    )
    counts = (await client.get(f"/users/{star}/counts")).json()
    assert truth == copies == counts["followers"] == len(fans)  # every churn ends on PUT
    assert (
        await rows(engines[0], "SELECT count(*) FROM follower_edge WHERE followee_id = :s", s=star)
        == 0
    )
