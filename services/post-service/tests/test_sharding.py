"""Posts over four physical databases: placement, routing, cross-shard reads, migrations on
every shard, and moving a shard while posts keep being written (ADR 0013)."""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime, timedelta

import pytest
from alembic import command
from alembic.script import ScriptDirectory
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from httpx import ASGITransport, AsyncClient
from sqlalchemy import delete, func, insert, select, text, update
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlalchemy.pool import NullPool

from terrascale.common.events import Envelope, EventSettings, UserCreated
from terrascale.common.ids import compose_id
from terrascale.common.migrations import alembic_config
from terrascale.common.resharding import MoveError, move_shard
from terrascale.common.settings import ConfigError, load_settings
from terrascale.common.sharding import (
    LOGICAL_SHARDS,
    OWNERSHIP,
    ShardedDatabases,
    default_owner,
    logical_shard,
)
from terrascale.common.testing.plugin import ServerAddresses, fresh_database
from terrascale.posts.app import create_app
from terrascale.posts.cli import SCRIPT_LOCATION, main
from terrascale.posts.config import PostSettings, get_settings
from terrascale.posts.consumer import user_projection_handler
from terrascale.posts.models import SHARDED_TABLES, Post, PostIdempotencyKey
from terrascale.posts.repository import PostRepository

DATABASES = 4
Headers = dict[str, str]


def author_on(shard: int) -> int:
    return compose_id(created_at=datetime.now(UTC), shard=shard, sequence=random.randrange(1024))


# Pure logic -----------------------------------------------------------------------------------


def test_the_logical_shard_is_the_low_ten_bits_of_the_shard_field() -> None:
    assert logical_shard(author_on(5)) == 5
    assert logical_shard(author_on(1023)) == 1023
    assert logical_shard(author_on(1024 + 5)) == 5  # the wider field folds onto 1,024
    assert logical_shard(author_on(8191)) == 1023


def test_shards_start_in_equal_contiguous_ranges() -> None:
    owners = [default_owner(shard, 4) for shard in range(LOGICAL_SHARDS)]
    assert [owners.count(database) for database in range(4)] == [256] * 4
    assert owners == sorted(owners)
    assert {default_owner(shard, 1) for shard in range(LOGICAL_SHARDS)} == {0}


def test_shard_databases_are_names_on_the_same_server_or_urls() -> None:
    settings = PostSettings(
        _env_file=None,  # pyright: ignore[reportCallIssue]
        postgres_host="db.internal",
        shard_databases="posts_1, postgresql://other-host:6432/posts_2",  # pyright: ignore[reportArgumentType]
    )
    urls = settings.shard_database_urls
    assert [(url.host, url.port, url.database) for url in urls] == [
        ("db.internal", 5432, "terrascale_posts"),
        ("db.internal", 5432, "posts_1"),
        ("other-host", 6432, "posts_2"),
    ]
    assert {url.drivername for url in urls} == {"postgresql+asyncpg"}


def test_a_malformed_shard_database_url_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="SHARD_DATABASES"):
        load_settings(PostSettings, _env_file=None, shard_databases="postgresql://:bad:port/x")


# Four databases -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def shard_urls(test_servers: ServerAddresses) -> Iterator[list[URL]]:
    with (
        fresh_database(test_servers.postgres, prefix="test_posts_s0") as s0,
        fresh_database(test_servers.postgres, prefix="test_posts_s1") as s1,
        fresh_database(test_servers.postgres, prefix="test_posts_s2") as s2,
        fresh_database(test_servers.postgres, prefix="test_posts_s3") as s3,
    ):
        urls = [s0, s1, s2, s3]
        for url in urls:
            command.upgrade(
                alembic_config(script_location=SCRIPT_LOCATION, database_url=url), "head"
            )
        yield urls


@pytest.fixture
def sharded_settings(
    shard_urls: list[URL], build_settings: Callable[..., PostSettings]
) -> PostSettings:
    return build_settings(
        database=shard_urls[0],
        shard_databases=[url.render_as_string(hide_password=False) for url in shard_urls[1:]],
        shard_map_refresh_seconds=0.2,
        db_pool_size=2,
        db_max_overflow=2,
    )


@pytest.fixture
async def sharded_app(
    sharded_settings: PostSettings, event_settings: EventSettings
) -> AsyncIterator[FastAPI]:
    application = create_app(sharded_settings, event_settings)
    async with LifespanManager(application):
        yield application


@pytest.fixture
async def sharded_client(sharded_app: FastAPI) -> AsyncIterator[AsyncClient]:
    transport = ASGITransport(app=sharded_app)
    async with AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client


@pytest.fixture
async def engines(shard_urls: list[URL]) -> AsyncIterator[list[AsyncEngine]]:
    """Connections of the test's own to each database, to look behind the API."""
    opened = [create_async_engine(url, poolclass=NullPool) for url in shard_urls]
    yield opened
    for engine in opened:
        await engine.dispose()


async def databases_holding(engines: list[AsyncEngine], post_id: int) -> list[int]:
    found = []
    for index, engine in enumerate(engines):
        async with engine.connect() as connection:
            if await connection.scalar(select(Post.id).where(Post.id == post_id)) is not None:
                found.append(index)
    return found


def shards_of(shards: ShardedDatabases) -> list[tuple[int, int, int]]:
    return shards.map.describe()


async def test_a_fresh_deployment_places_256_shards_on_each_database(
    sharded_app: FastAPI, sharded_client: AsyncClient
) -> None:
    shards: ShardedDatabases = sharded_app.state.shards
    assert shards_of(shards) == [(0, 255, 0), (256, 511, 1), (512, 767, 2), (768, 1023, 3)]
    ready = await sharded_client.get("/ready")
    assert ready.status_code == 200
    assert len([name for name in ready.json()["checks"] if name.startswith("postgres")]) == 4


async def test_posts_live_on_their_authors_shard_and_batch_reads_span_every_database(
    sharded_client: AsyncClient,
    engines: list[AsyncEngine],
    auth: Callable[[int], Headers],
) -> None:
    authors = [author_on(shard) for shard in (5, 300, 600, 900)]
    post_ids = []
    for author in authors:
        response = await sharded_client.post("/posts", json={"text": "hi"}, headers=auth(author))
        assert response.status_code == 201
        post_ids.append(int(response.json()["id"]))

    for expected, post_id in enumerate(post_ids):
        assert logical_shard(post_id) == logical_shard(authors[expected])
        assert await databases_holding(engines, post_id) == [expected]

    wanted = list(reversed(post_ids))
    batch = await sharded_client.get("/posts", params={"ids": ",".join(map(str, wanted))})
    assert [int(post["id"]) for post in batch.json()] == wanted
    for author, post_id in zip(authors, post_ids, strict=True):
        page = (await sharded_client.get(f"/users/{author}/posts")).json()
        assert [int(post["id"]) for post in page] == [post_id]

    deleted = await sharded_client.delete(f"/posts/{post_ids[2]}", headers=auth(authors[2]))
    assert deleted.status_code == 204
    assert (await sharded_client.get(f"/posts/{post_ids[2]}")).status_code == 404


async def test_every_shard_databases_outbox_is_published(
    sharded_client: AsyncClient, engines: list[AsyncEngine], auth: Callable[[int], Headers]
) -> None:
    for shard in (1, 257, 513, 769):
        author = author_on(shard)
        await sharded_client.post("/posts", json={"text": "out"}, headers=auth(author))
    for engine in engines:
        left = None
        for _ in range(200):
            async with engine.connect() as connection:
                left = await connection.scalar(
                    text("SELECT count(*) FROM outbox_event WHERE published_at IS NULL")
                )
            if left == 0:
                break
            await asyncio.sleep(0.05)
        assert left == 0


async def test_mentions_resolve_from_the_services_own_database(
    sharded_app: FastAPI, sharded_client: AsyncClient, auth: Callable[[int], Headers]
) -> None:
    mentioned, name = author_on(10), f"u_{uuid.uuid4().hex[:10]}"
    handle = user_projection_handler(sharded_app.state.shards.primary.session_factory)
    await handle(Envelope.wrap(UserCreated(user_id=mentioned, username=name), source="test"))
    response = await sharded_client.post(
        "/posts", json={"text": f"hello @{name}"}, headers=auth(author_on(1000))
    )
    assert response.json()["mentions"] == [{"user_id": str(mentioned), "username": name}]


class Writes:
    """Posts written (and every fifth deleted) through the API until stopped, with what was
    acknowledged and every answer that was not a success."""

    def __init__(self, client: AsyncClient, auth: Callable[[int], Headers]) -> None:
        self.client = client
        self.auth = auth
        self.acknowledged: dict[int, bool] = {}  # post id → still visible
        self.failures: list[int] = []
        self.stop = asyncio.Event()

    async def until_stopped(self, author: int) -> None:
        count = 0
        while not self.stop.is_set():
            count += 1
            headers = {**self.auth(author), "Idempotency-Key": uuid.uuid4().hex}
            response = await self.client.post("/posts", json={"text": f"n{count}"}, headers=headers)
            if response.status_code != 201:
                self.failures.append(response.status_code)
                continue
            post_id = int(response.json()["id"])
            self.acknowledged[post_id] = True
            if count % 5 == 0:
                gone = await self.client.delete(f"/posts/{post_id}", headers=self.auth(author))
                if gone.status_code == 204:
                    self.acknowledged[post_id] = False
                else:
                    self.failures.append(gone.status_code)


async def test_a_shard_moves_while_posts_are_written_and_nothing_is_lost(
    sharded_app: FastAPI,
    sharded_client: AsyncClient,
    engines: list[AsyncEngine],
    auth: Callable[[int], Headers],
) -> None:
    shard = 42  # starts on database 0
    movers = [author_on(shard) for _ in range(3)]
    bystander = author_on(43)
    writes = Writes(sharded_client, auth)
    for author in movers:  # some rows before the move starts
        for n in range(20):
            response = await sharded_client.post(
                "/posts", json={"text": f"p{n}"}, headers=auth(author)
            )
            writes.acknowledged[int(response.json()["id"])] = True
    writers = [asyncio.create_task(writes.until_stopped(author)) for author in [*movers, bystander]]
    await asyncio.sleep(0.3)
    report = await move_shard(
        shard=shard, engines=engines, target=2, tables=SHARDED_TABLES, drain_seconds=0.5
    )
    await asyncio.sleep(0.5)  # writes carry on against the new map
    writes.stop.set()
    await asyncio.gather(*writers)
    print(report.to_text())  # the figures, with pytest -s

    assert writes.failures == []
    assert report.source == 0
    assert report.fenced_seconds < 2
    assert report.cleaned
    shards: ShardedDatabases = sharded_app.state.shards
    assert shards.map.owner(shard) == 2
    async with engines[0].connect() as connection:
        left = await connection.scalar(
            text("SELECT count(*) FROM post WHERE ((author_id >> 10) & 1023) = :s"), {"s": shard}
        )
    assert left == 0

    acknowledged = writes.acknowledged
    mover_posts = {post_id for post_id in acknowledged if logical_shard(post_id) == shard}
    assert len(mover_posts) > 60  # 60 before the move, and more during it
    async with engines[2].connect() as connection:
        on_target = set(
            await connection.scalars(
                select(Post.id).where(Post.author_id.in_(movers))  # every post, deleted or not
            )
        )
    assert mover_posts <= on_target
    ids = sorted(acknowledged)
    visible: set[int] = set()
    for start in range(0, len(ids), 100):
        chunk = ",".join(map(str, ids[start : start + 100]))
        visible |= {int(p["id"]) for p in (await sharded_client.get(f"/posts?ids={chunk}")).json()}
    assert visible == {post_id for post_id, shown in acknowledged.items() if shown}

    after = await sharded_client.post("/posts", json={"text": "later"}, headers=auth(movers[0]))
    assert await databases_holding(engines, int(after.json()["id"])) == [2]


async def test_the_key_purge_waits_at_a_moves_fence_and_leaves_the_shard_to_its_new_owner(
    sharded_client: AsyncClient, engines: list[AsyncEngine], auth: Callable[[int], Headers]
) -> None:
    moving, staying = 44, 45  # both on database 0
    authors = {shard: author_on(shard) for shard in (moving, staying)}
    for author in authors.values():
        headers = {**auth(author), "Idempotency-Key": "expired"}
        response = await sharded_client.post("/posts", json={"text": "k"}, headers=headers)
        assert response.status_code == 201
    async with engines[0].begin() as connection:
        await connection.execute(
            update(PostIdempotencyKey)
            .where(PostIdempotencyKey.author_id.in_(authors.values()))
            .values(created_at=func.now() - timedelta(days=2))
        )

    async def purge() -> int:
        async with async_sessionmaker(engines[0]).begin() as session:
            return await PostRepository(session).purge_idempotency_keys(
                before=datetime.now(UTC) - timedelta(days=1)
            )

    # What move_shard does at its fence and switch, held open here to purge meanwhile.
    async with engines[0].connect() as fence:
        await fence.begin()
        epoch = await fence.scalar(
            select(OWNERSHIP.c.epoch).where(OWNERSHIP.c.shard == moving).with_for_update()
        )
        assert epoch is not None
        purging = asyncio.create_task(purge())
        await asyncio.sleep(0.3)
        assert not purging.done()  # it waits, as a writer of the shard does
        async with engines[1].begin() as target:
            await target.execute(insert(OWNERSHIP).values(shard=moving, epoch=epoch + 1))
        await fence.execute(delete(OWNERSHIP).where(OWNERSHIP.c.shard == moving))
        await fence.commit()

    assert await purging == 1
    async with engines[0].connect() as connection:
        left = await connection.scalars(
            select(PostIdempotencyKey.author_id).where(
                PostIdempotencyKey.author_id.in_(authors.values())
            )
        )
        assert list(left) == [authors[moving]]  # a move's clean-up would delete it with the shard


async def test_moving_a_shard_where_it_already_is_is_refused(engines: list[AsyncEngine]) -> None:
    with pytest.raises(MoveError, match="already"):
        await move_shard(
            shard=300, engines=engines, target=1, tables=SHARDED_TABLES, drain_seconds=0
        )


async def test_a_shard_owned_by_nobody_answers_503_until_the_move_is_finished(
    sharded_app: FastAPI,
    sharded_client: AsyncClient,
    engines: list[AsyncEngine],
    auth: Callable[[int], Headers],
) -> None:
    shard = 700  # on database 2
    author = author_on(shard)
    assert (
        await sharded_client.post("/posts", json={"text": "a"}, headers=auth(author))
    ).status_code == 201
    # A move to database 3 copied and verified the rows, then stopped between its two commits.
    await move_shard(
        shard=shard,
        engines=engines,
        target=3,
        tables=SHARDED_TABLES,
        drain_seconds=0,
        clean_up=False,
    )
    async with engines[3].begin() as connection:
        await connection.execute(delete(OWNERSHIP).where(OWNERSHIP.c.shard == shard))
    await sharded_app.state.shards.reload()

    refused = await sharded_client.post("/posts", json={"text": "b"}, headers=auth(author))
    assert refused.status_code == 503
    assert refused.headers["content-type"] == "application/problem+json"
    assert refused.headers["retry-after"] == "1"
    assert refused.json()["type"].endswith(":shard-unavailable")
    assert (await sharded_client.get(f"/users/{author}/posts")).status_code == 503

    report = await move_shard(
        shard=shard, engines=engines, target=3, tables=SHARDED_TABLES, drain_seconds=0
    )
    assert report.tables["post"].rows == 1
    await sharded_app.state.shards.reload()
    assert (
        await sharded_client.post("/posts", json={"text": "c"}, headers=auth(author))
    ).status_code == 201


def test_the_command_line_migrates_every_database_and_moves_a_shard(
    test_servers: ServerAddresses,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    with (
        fresh_database(test_servers.postgres, prefix="test_posts_cli0") as own,
        fresh_database(test_servers.postgres, prefix="test_posts_cli1") as other,
    ):
        monkeypatch.setenv("DATABASE_URL", own.render_as_string(hide_password=False))
        monkeypatch.setenv("SHARD_DATABASES", other.database or "")
        get_settings.cache_clear()
        head = ScriptDirectory.from_config(
            alembic_config(script_location=SCRIPT_LOCATION, database_url=own)
        ).get_current_head()
        try:
            assert main(["migrate"]) == 0
            capsys.readouterr()  # the migration log
            for url in (own, other):
                version = asyncio.run(_scalar(url, "SELECT version_num FROM alembic_version"))
                assert version == head
            assert main(["shards"]) == 0
            printed = [line for line in capsys.readouterr().out.splitlines() if line[0] != "{"]
            assert printed == [
                f"shards 0-511: database 0 ({own.database})",
                f"shards 512-1023: database 1 ({other.database})",
            ]
            assert main(["move-shard", "7", "1", "--drain-seconds", "0"]) == 0
            assert "\nshard 7: database 0 -> 1 in " in capsys.readouterr().out
            assert main(["move-shard", "7", "1"]) == 1
            assert "already" in capsys.readouterr().err
            assert main(["move-shard", "7", "5"]) == 2
        finally:
            get_settings.cache_clear()


async def _scalar(url: URL, sql: str) -> object:
    engine = create_async_engine(url, poolclass=NullPool)
    try:
        async with engine.connect() as connection:
            return await connection.scalar(text(sql))
    finally:
        await engine.dispose()
