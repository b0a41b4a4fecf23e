"""Two regions, ``eu`` and ``us``, each with its own five databases and its own event streams,
and the two replicators between them. ``eu`` runs on a Redis server of its own (an embedded
Valkey, persistent), so a test can take the whole region down, Redis included."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest
from redis.asyncio import Redis
from sqlalchemy.engine import URL

from terrascale.common.embedded import EmbeddedValkey, RedisAddress
from terrascale.common.keys import generate_private_key_pem
from terrascale.common.testing.plugin import ServerAddresses, fresh_database
from terrascale.launcher.cli import DURABLE_VALKEY
from terrascale.regions.local import DATABASES, LocalRegion, TwoRegions, migrate
from terrascale.regions.replicator import Replicator


def region_databases(stack: ExitStack, admin: URL, region: str) -> dict[str, URL]:
    databases = {
        name: stack.enter_context(fresh_database(admin, prefix=f"test_region_{region}_{name}"))
        for name in DATABASES
    }
    migrate(databases)
    return databases


@pytest.fixture(scope="module")
def databases(test_servers: ServerAddresses) -> Iterator[dict[str, dict[str, URL]]]:
    with ExitStack() as stack:
        yield {
            region: region_databases(stack, test_servers.postgres, region)
            for region in ("eu", "us")
        }


@pytest.fixture
def eu_valkey(tmp_path: Path) -> Iterator[EmbeddedValkey]:
    valkey = EmbeddedValkey(tmp_path / "eu-valkey", persist=True, config=DURABLE_VALKEY)
    valkey.start()
    yield valkey
    valkey.stop()


@pytest.fixture
async def regions(
    databases: dict[str, dict[str, URL]],
    test_servers: ServerAddresses,
    eu_valkey: EmbeddedValkey,
) -> AsyncIterator[TwoRegions]:
    private_pem = generate_private_key_pem()
    prefix = f"test:{uuid.uuid4().hex[:12]}:"
    assert eu_valkey.port is not None
    eu = LocalRegion(
        name="eu",
        databases=databases["eu"],
        redis=RedisAddress("127.0.0.1", eu_valkey.port),
        key_prefix=f"{prefix}eu:",
        private_key_pem=private_pem,
    )
    us = LocalRegion(
        name="us",
        databases=databases["us"],
        redis=test_servers.redis,
        key_prefix=f"{prefix}us:",
        private_key_pem=private_pem,
    )
    stop = asyncio.Event()
    await eu.start()
    await us.start()
    replicators = [
        asyncio.create_task(Replicator(source=eu.bus, target=us.bus).run_until(stop)),
        asyncio.create_task(Replicator(source=us.bus, target=eu.bus).run_until(stop)),
    ]
    try:
        yield TwoRegions(eu=eu, us=us, private_key_pem=private_pem)
    finally:
        stop.set()
        await asyncio.gather(*replicators, return_exceptions=True)
        await us.stop()
        await eu.stop()
        redis = Redis(
            host=test_servers.redis.host, port=test_servers.redis.port, db=test_servers.redis.db
        )
        keys = [key async for key in redis.scan_iter(match=f"{prefix}*", count=500)]
        if keys:
            await redis.delete(*keys)
        await redis.aclose()
