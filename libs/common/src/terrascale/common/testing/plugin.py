"""Pytest fixtures: real PostgreSQL and Redis for every test session.

``TEST_DATABASE_URL`` (an admin connection, any driver) and ``TEST_REDIS_URL`` select existing
servers, as CI does; without them the session starts embedded servers of its own. Each session
gets fresh databases built by the services' real Alembic migrations and dropped at the end; each
test gets its own Redis key prefix, deleted afterwards, so parallel runs never collide.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Generator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import pytest
from redis.asyncio import Redis
from sqlalchemy import text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from terrascale.common.embedded import EmbeddedPostgres, EmbeddedValkey, RedisAddress


@dataclass(frozen=True, slots=True)
class ServerAddresses:
    postgres: URL
    redis: RedisAddress


@pytest.fixture(scope="session")
def test_servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerAddresses]:
    embedded_postgres: EmbeddedPostgres | None = None
    embedded_valkey: EmbeddedValkey | None = None
    try:
        if database_url := os.environ.get("TEST_DATABASE_URL"):
            postgres = make_url(database_url).set(drivername="postgresql+asyncpg")
        else:
            embedded_postgres = EmbeddedPostgres(tmp_path_factory.mktemp("pg") / "data")
            postgres = embedded_postgres.start()
        if redis_url := os.environ.get("TEST_REDIS_URL"):
            redis = RedisAddress.from_url(redis_url)
        else:
            embedded_valkey = EmbeddedValkey()
            redis = embedded_valkey.start()
        yield ServerAddresses(postgres=postgres, redis=redis)
    finally:
        if embedded_valkey is not None:
            embedded_valkey.stop()
        if embedded_postgres is not None:
            embedded_postgres.stop()


async def _execute_autocommit(url: URL, statement: str) -> None:
    engine = create_async_engine(url, poolclass=NullPool, isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as connection:
            await connection.execute(text(statement))
    finally:
        await engine.dispose()


@contextmanager
def fresh_database(admin_url: URL, *, prefix: str) -> Generator[URL]:
    """Create a uniquely named database, yield its URL, drop it afterwards."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    asyncio.run(_execute_autocommit(admin_url, f'CREATE DATABASE "{name}"'))
    try:
        yield admin_url.set(database=name)
    finally:
        asyncio.run(
            _execute_autocommit(admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        )


@pytest.fixture
async def redis_key_prefix(test_servers: ServerAddresses) -> AsyncIterator[str]:
    prefix = f"test:{uuid.uuid4().hex[:12]}:"
    yield prefix
    address = test_servers.redis
    client = Redis(host=address.host, port=address.port, db=address.db)
    try:
        keys = [key async for key in client.scan_iter(match=f"{prefix}*", count=500)]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()
