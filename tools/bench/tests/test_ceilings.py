"""The ceilings against real servers: an embedded Valkey of the test's own (redis-benchmark
writes keys of fixed names), a database of the test's own for pgbench, the bare app."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from terrascale.bench.ceilings import bare_server, postgres_ceiling, redis_ceilings
from terrascale.common.embedded import EmbeddedValkey, RedisAddress
from terrascale.common.testing.helpers import free_port
from terrascale.common.testing.plugin import ServerAddresses


@pytest.fixture
def own_valkey(tmp_path: Path) -> Iterator[RedisAddress]:
    valkey = EmbeddedValkey(tmp_path / "valkey")
    try:
        yield valkey.start()
    finally:
        valkey.stop()


@pytest.fixture
async def own_database(test_servers: ServerAddresses) -> AsyncIterator[str]:
    name = f"test_pgbench_{uuid.uuid4().hex[:8]}"
    admin = create_async_engine(
        test_servers.postgres, poolclass=NullPool, isolation_level="AUTOCOMMIT"
    )
    async with admin.connect() as connection:
        await connection.execute(text(f'CREATE DATABASE "{name}"'))
    yield name
    async with admin.connect() as connection:
        await connection.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
    await admin.dispose()


@pytest.mark.skipif(shutil.which("redis-benchmark") is None, reason="needs redis-tools")
def test_redis_ceilings_are_measured(own_valkey: RedisAddress) -> None:
    ceilings = redis_ceilings(own_valkey, requests=2_000)
    assert [c.name for c in ceilings] == [
        "Redis GET, pipeline 1",
        "Redis ZADD, pipeline 1",
        "Redis GET, pipeline 16",
        "Redis ZADD, pipeline 16",
    ]
    assert all(c.rate and c.rate > 100 for c in ceilings)


@pytest.mark.skipif(shutil.which("pgbench") is None, reason="needs postgresql-client")
def test_the_postgres_ceiling_is_measured(test_servers: ServerAddresses, own_database: str) -> None:
    ceiling = postgres_ceiling(make_url(test_servers.postgres), own_database, seconds=1, scale=1)
    assert ceiling.rate is not None
    assert ceiling.rate > 100
    assert ceiling.command.startswith("pgbench -S")


def test_the_bare_app_answers_its_constant(tmp_path: Path) -> None:
    with (
        (tmp_path / "bare.log").open("wb") as log,
        bare_server(free_port(), {"WEB_CONCURRENCY": "1", "LOG_LEVEL": "WARNING"}, log) as url,
    ):
        answer = httpx.get(url)
    assert answer.json() == {
        "id": "241234567890123456",
        "username": "bench_0a1b2c3d",
        "cached": True,
    }
