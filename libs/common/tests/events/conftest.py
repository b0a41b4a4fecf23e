from __future__ import annotations

import os
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import pytest
from alembic import command
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from terrascale.common.events import (
    CATEGORIES,
    EventBus,
    EventSettings,
    NatsJetStreamBus,
    RedisStreamsBus,
)
from terrascale.common.migrations import alembic_config
from terrascale.common.testing.plugin import ServerAddresses, fresh_database

from .harness import Consumers, DemoConsumer

MIGRATIONS = str(Path(__file__).parent / "migrations")
NATS_SKIP_REASON = (
    "NATS JetStream tests need TEST_NATS_URL pointing at a server with JetStream "
    "(e.g. TEST_NATS_URL=nats://127.0.0.1:4222)"
)


@pytest.fixture(scope="session")
def events_database_url(test_servers: ServerAddresses) -> Iterator[URL]:
    with fresh_database(test_servers.postgres, prefix="test_events") as url:
        command.upgrade(alembic_config(script_location=MIGRATIONS, database_url=url), "head")
        yield url


@pytest.fixture
async def engine(events_database_url: URL) -> AsyncIterator[AsyncEngine]:
    engine = create_async_engine(events_database_url, pool_size=12, max_overflow=8)
    yield engine
    await engine.dispose()


@pytest.fixture
def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


@pytest.fixture
def event_settings(redis_key_prefix: str) -> EventSettings:
    """Small idle times and partitions, so crash and retry paths take fractions of a second."""
    return EventSettings(
        _env_file=None,  # pyright: ignore[reportCallIssue]
        event_key_prefix=redis_key_prefix,
        nats_url=os.environ.get("TEST_NATS_URL", "nats://127.0.0.1:4222"),
        event_partitions=4,
        event_claim_idle_seconds=0.5,
        event_max_deliveries=3,
        event_retry_delay_seconds=0.01,
        event_poll_seconds=0.05,
        event_read_count=8,
        event_relay_poll_seconds=0.01,
    )


def event_redis(servers: ServerAddresses) -> Redis:
    address = servers.redis
    return Redis(
        host=address.host,
        port=address.port,
        db=address.db,
        socket_timeout=5,
        retry=Retry(NoBackoff(), retries=0),
    )


async def open_bus(transport: str, servers: ServerAddresses, settings: EventSettings) -> EventBus:
    if transport == "redis":
        return RedisStreamsBus(event_redis(servers), settings)
    if not os.environ.get("TEST_NATS_URL"):
        pytest.skip(NATS_SKIP_REASON)
    return await NatsJetStreamBus.connect(settings)


@pytest.fixture(params=["redis", "nats"])
async def bus(
    request: pytest.FixtureRequest, test_servers: ServerAddresses, event_settings: EventSettings
) -> AsyncIterator[EventBus]:
    """The same tests over each transport; names are unique to the test and removed after it
    (Redis keys by the ``redis_key_prefix`` fixture, NATS streams here)."""
    opened = await open_bus(str(request.param), test_servers, event_settings)
    try:
        yield opened
    finally:
        if isinstance(opened, NatsJetStreamBus):
            await opened.delete_streams(CATEGORIES)
        await opened.close()


@pytest.fixture
async def redis_bus(
    test_servers: ServerAddresses, event_settings: EventSettings
) -> AsyncIterator[RedisStreamsBus]:
    opened = RedisStreamsBus(event_redis(test_servers), event_settings)
    yield opened
    await opened.close()


@pytest.fixture
async def consumers(bus: EventBus, event_settings: EventSettings) -> AsyncIterator[Consumers]:
    started = Consumers(bus, event_settings)
    yield started
    await started.close()


@pytest.fixture
def demo(session_factory: async_sessionmaker[AsyncSession]) -> DemoConsumer:
    return DemoConsumer(session_factory)


BusFactory = Callable[..., Awaitable[EventBus]]


@pytest.fixture
async def make_bus(
    bus: EventBus, test_servers: ServerAddresses, event_settings: EventSettings
) -> AsyncIterator[BusFactory]:
    """Another bus of the same transport and names, with some settings changed."""
    opened: list[EventBus] = []

    async def make(**changes: object) -> EventBus:
        settings = event_settings.model_copy(update=changes)
        another = await open_bus(bus.transport, test_servers, settings)
        opened.append(another)
        return another

    yield make
    for another in opened:
        await another.close()
