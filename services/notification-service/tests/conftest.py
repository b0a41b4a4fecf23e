"""Fixtures of the Notification Service suite: a migrated database, settings confined to the
test's Redis key prefix, access tokens signed with a session key pair, the apps in-process or
behind a real Uvicorn server, the event bus, and a way to store notifications directly."""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
import pytest
import uvicorn
from alembic import command
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from httpx import ASGITransport, AsyncClient
from redis.asyncio import Redis
from sqlalchemy import text
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlalchemy.pool import NullPool

from terrascale.common.auth import ACCESS_TOKEN_TYPE, ALGORITHM
from terrascale.common.events import EventBus, EventSettings, connect_bus
from terrascale.common.ids import compose_id
from terrascale.common.keys import generate_private_key_pem, load_private_key, public_key_pem
from terrascale.common.migrations import alembic_config
from terrascale.common.testing.helpers import free_port
from terrascale.common.testing.plugin import ServerAddresses, fresh_database
from terrascale.notifications import service as notification_service
from terrascale.notifications.app import create_app
from terrascale.notifications.cli import SCRIPT_LOCATION
from terrascale.notifications.config import NotificationSettings
from terrascale.notifications.repository import NotificationRepository
from terrascale.notifications.rules import Draft, Kind
from terrascale.notifications.wakeups import WakeUpPublisher

SIGNING_KEY = load_private_key(generate_private_key_pem())
PUBLIC_KEY_PEM = public_key_pem(SIGNING_KEY)


# --- database ------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def database_url(test_servers: ServerAddresses) -> Iterator[URL]:
    with fresh_database(test_servers.postgres, prefix="test_notifications") as url:
        command.upgrade(alembic_config(script_location=SCRIPT_LOCATION, database_url=url), "head")
        yield url


@pytest.fixture
async def engine(database_url: URL) -> AsyncIterator[AsyncEngine]:
    engine = create_async_engine(database_url, poolclass=NullPool)
    yield engine
    await engine.dispose()


Sql = Callable[..., Awaitable[list[Any]]]


@pytest.fixture
def sql(engine: AsyncEngine) -> Sql:
    """Direct SQL for checks the API does not expose (rows, the state row)."""

    async def run(statement: str, **params: object) -> list[Any]:
        async with engine.begin() as connection:
            result = await connection.execute(text(statement), params)
            return list(result.all()) if result.returns_rows else []

    return run


Store = Callable[..., Awaitable[int | None]]


@pytest.fixture
async def store(
    engine: AsyncEngine, test_servers: ServerAddresses, redis_key_prefix: str
) -> AsyncIterator[Store]:
    """Store one notification as the worker would (its own transaction, then a wake-up on
    the recipient's channel); its seq, or None for a duplicate."""
    factory = async_sessionmaker(engine, expire_on_commit=False)
    address = test_servers.redis
    redis = Redis(host=address.host, port=address.port, db=address.db)
    publisher = WakeUpPublisher(redis, key_prefix=redis_key_prefix)

    async def add(
        recipient_id: int,
        *,
        kind: Kind = Kind.MENTION,
        actor_id: int | None = None,
        subject_id: int | None = None,
        created_at: datetime | None = None,
    ) -> int | None:
        actor = actor_id or new_user_id()
        draft = Draft(
            recipient_id=recipient_id,
            kind=kind,
            actor_id=actor,
            subject_id=subject_id or (actor if kind is Kind.FOLLOW else new_user_id()),
            created_at=created_at or datetime.now(UTC),
        )
        async with factory() as session, session.begin():
            created = await notification_service.record(
                notifications=NotificationRepository(session), drafts=[draft]
            )
        await publisher.announce(created)
        return created[0][1] if created else None

    yield add
    await redis.aclose()


# --- ids and tokens ------------------------------------------------------------------------


def new_user_id() -> int:
    """An id in the real layout, random enough that tests sharing the database never meet."""
    return compose_id(
        created_at=datetime.now(UTC) - timedelta(seconds=random.randrange(10**6)),
        shard=random.randrange(8192),
        sequence=random.randrange(1024),
    )


@pytest.fixture
def new_id() -> Callable[[], int]:
    return new_user_id


def issue_token(
    user_id: int | str,
    *,
    ttl: timedelta = timedelta(minutes=15),
    key: Any = SIGNING_KEY,
    token_type: str = ACCESS_TOKEN_TYPE,
) -> str:
    """An access token as the User Service issues them (EdDSA, ``typ: at+jwt``)."""
    issued_at = datetime.now(UTC)
    payload: dict[str, object] = {
        "sub": str(user_id),
        "iss": "terrascale",
        "aud": "terrascale",
        "iat": issued_at,
        "exp": issued_at + ttl,
        "jti": uuid.uuid4().hex,
    }
    return jwt.encode(payload, key, algorithm=ALGORITHM, headers={"typ": token_type})


Auth = Callable[[int], dict[str, str]]


@pytest.fixture
def auth() -> Auth:
    """Authorization headers of a signed-in user."""
    return lambda user_id: {"Authorization": f"Bearer {issue_token(user_id)}"}


@pytest.fixture
def jwt_public_key() -> str:
    return PUBLIC_KEY_PEM


# --- settings and apps ---------------------------------------------------------------------


MakeSettings = Callable[..., NotificationSettings]


@pytest.fixture
def make_settings(
    database_url: URL, test_servers: ServerAddresses, redis_key_prefix: str
) -> MakeSettings:
    def build(**overrides: object) -> NotificationSettings:
        values: dict[str, object] = {
            "database_url": database_url.render_as_string(hide_password=False),
            "redis_host": test_servers.redis.host,
            "redis_port": test_servers.redis.port,
            "redis_db": test_servers.redis.db,
            "cache_key_prefix": redis_key_prefix,
            "log_level": "INFO",
            "log_format": "json",
            "jwt_public_key": PUBLIC_KEY_PEM,
            "notification_heartbeat_seconds": 15,
            "notification_poll_seconds": 0.2,
        }
        values.update(overrides)
        return NotificationSettings(_env_file=None, **values)  # pyright: ignore[reportCallIssue]

    return build


@pytest.fixture
def settings(make_settings: MakeSettings) -> NotificationSettings:
    return make_settings()


@pytest.fixture
def event_settings(redis_key_prefix: str) -> EventSettings:
    """Streams, leases and dead letters under the test's own key prefix; short polls so that
    workers stop quickly."""
    return EventSettings(
        _env_file=None,  # pyright: ignore[reportCallIssue]
        event_key_prefix=redis_key_prefix,
        event_partitions=2,
        event_poll_seconds=0.1,
        event_relay_poll_seconds=0.02,
    )


@pytest.fixture
async def app(settings: NotificationSettings) -> AsyncIterator[FastAPI]:
    application = create_app(settings)
    async with LifespanManager(application):
        yield application


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[AsyncClient]:
    async with AsyncClient(transport=ASGITransport(app=app), base_url="http://testserver") as c:
        yield c


@pytest.fixture
async def bus(
    settings: NotificationSettings, event_settings: EventSettings
) -> AsyncIterator[EventBus]:
    connected = await connect_bus(event_settings, settings)
    yield connected
    await connected.close()


@asynccontextmanager
async def _serve_http(app: FastAPI) -> AsyncGenerator[str]:
    """Serve ``app`` with a real Uvicorn server on this event loop; yields its base URL. (The
    in-process ASGI transport hands over a response only once it is complete, which an endless
    event stream never is.)"""
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host="127.0.0.1",
            port=port,
            lifespan="on",
            log_level="warning",
            timeout_graceful_shutdown=5,
        )
    )
    serving = asyncio.create_task(server.serve())
    try:
        async with asyncio.timeout(10):
            while not server.started:
                if serving.done():
                    pytest.fail("the test server did not start")
                await asyncio.sleep(0.01)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await serving


ServeHttp = Callable[[FastAPI], AbstractAsyncContextManager[str]]


@pytest.fixture
def serve_http() -> ServeHttp:
    return _serve_http


async def _eventually(check: Callable[[], Awaitable[bool]], *, seconds: float = 10) -> None:
    for _ in range(int(seconds / 0.02)):
        if await check():
            return
        await asyncio.sleep(0.02)
    pytest.fail("condition not met in time")


Eventually = Callable[..., Awaitable[None]]


@pytest.fixture
def eventually() -> Eventually:
    """Wait until an async check passes (10 s at most)."""
    return _eventually
