"""Fixtures of the Post Service suite: a database migrated once per session, an app per test
with its own Redis key prefix (cache and events), and signed access tokens.

Helpers are fixtures rather than importable functions: every service has a ``tests`` folder,
and they are not packages, so they cannot import from one another without colliding.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import jwt
import pytest
from alembic import command
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from httpx import ASGITransport, AsyncClient
from sqlalchemy import text
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.pool import NullPool

from terrascale.common.auth import ACCESS_TOKEN_TYPE, ALGORITHM
from terrascale.common.events import Envelope, EventSettings, UserCreated
from terrascale.common.ids import MAX_SHARD, compose_id
from terrascale.common.keys import generate_private_key_pem, load_private_key, public_key_pem
from terrascale.common.migrations import alembic_config
from terrascale.common.testing.plugin import ServerAddresses, fresh_database
from terrascale.posts.app import create_app
from terrascale.posts.cli import SCRIPT_LOCATION
from terrascale.posts.config import PostSettings
from terrascale.posts.consumer import user_projection_handler

SIGNING_KEY = load_private_key(generate_private_key_pem())
PUBLIC_KEY_PEM = public_key_pem(SIGNING_KEY)


class TokenIssuer(Protocol):
    def __call__(
        self,
        user_id: int,
        *,
        issued_at: datetime | None = None,
        ttl: timedelta = ...,
        headers: dict[str, Any] | None = None,
        **claims: Any,
    ) -> str: ...


@pytest.fixture(scope="session")
def database_url(test_servers: ServerAddresses) -> Iterator[URL]:
    with fresh_database(test_servers.postgres, prefix="test_posts") as url:
        command.upgrade(alembic_config(script_location=SCRIPT_LOCATION, database_url=url), "head")
        yield url


def _settings(
    *, database_url: URL, servers: ServerAddresses, key_prefix: str, **overrides: object
) -> PostSettings:
    values: dict[str, object] = {
        "database_url": database_url.render_as_string(hide_password=False),
        "redis_host": servers.redis.host,
        "redis_port": servers.redis.port,
        "redis_db": servers.redis.db,
        "cache_key_prefix": key_prefix,
        "cache_ttl_seconds": 60,
        "log_level": "INFO",
        "log_format": "json",
        "jwt_public_key": PUBLIC_KEY_PEM,
    }
    values.update(overrides)
    return PostSettings(_env_file=None, **values)  # pyright: ignore[reportCallIssue]


@pytest.fixture
def build_settings(
    database_url: URL, test_servers: ServerAddresses, redis_key_prefix: str
) -> Callable[..., PostSettings]:
    """Settings for this test's database (or ``database``) and key prefix, with ``overrides``
    applied."""

    def build(*, database: URL | None = None, **overrides: object) -> PostSettings:
        return _settings(
            database_url=database or database_url,
            servers=test_servers,
            key_prefix=redis_key_prefix,
            **overrides,
        )

    return build


@pytest.fixture
def settings(build_settings: Callable[..., PostSettings]) -> PostSettings:
    return build_settings()


@pytest.fixture
def event_settings(redis_key_prefix: str) -> EventSettings:
    """Events under this test's key prefix too, with short polls so tests wait little."""
    return EventSettings(
        _env_file=None,  # pyright: ignore[reportCallIssue]
        event_key_prefix=redis_key_prefix,
        event_partitions=2,
        event_poll_seconds=0.05,
        event_relay_poll_seconds=0.01,
        event_claim_idle_seconds=1.0,
    )


@pytest.fixture
async def app(settings: PostSettings, event_settings: EventSettings) -> AsyncIterator[FastAPI]:
    application = create_app(settings, event_settings)
    async with LifespanManager(application):
        yield application


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[AsyncClient]:
    async with AsyncClient(transport=ASGITransport(app=app), base_url="http://testserver") as c:
        yield c


@pytest.fixture
async def engine(database_url: URL) -> AsyncIterator[AsyncEngine]:
    """A connection to the test database of its own, to look behind the API."""
    engine = create_async_engine(database_url, poolclass=NullPool)
    yield engine
    await engine.dispose()


@pytest.fixture
def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


@pytest.fixture
def issue_token() -> TokenIssuer:
    """Signs access tokens as the User Service does (EdDSA, ``typ: at+jwt``)."""

    def issue(
        user_id: int,
        *,
        issued_at: datetime | None = None,
        ttl: timedelta = timedelta(minutes=15),
        headers: dict[str, Any] | None = None,
        **claims: Any,
    ) -> str:
        now = issued_at or datetime.now(UTC)
        payload: dict[str, Any] = {
            "sub": str(user_id),
            "iss": "terrascale",
            "aud": "terrascale",
            "iat": now,
            "exp": now + ttl,
            "jti": uuid.uuid4().hex,
            **claims,
        }
        return jwt.encode(
            payload,
            SIGNING_KEY,
            algorithm=ALGORITHM,
            headers={"typ": ACCESS_TOKEN_TYPE, **(headers or {})},
        )

    return issue


@pytest.fixture
def new_user_id() -> Callable[[], int]:
    """A fresh user id in the shared layout, on a random shard (as the User Service mints)."""

    def mint() -> int:
        return compose_id(
            created_at=datetime.now(UTC),
            shard=random.randrange(MAX_SHARD + 1),
            sequence=random.randrange(1024),
        )

    return mint


@pytest.fixture
def auth(issue_token: TokenIssuer) -> Callable[[int], dict[str, str]]:
    """Request headers carrying a valid access token for ``user_id``."""

    def headers(user_id: int) -> dict[str, str]:
        return {"Authorization": f"Bearer {issue_token(user_id)}"}

    return headers


@pytest.fixture
def author(new_user_id: Callable[[], int]) -> int:
    return new_user_id()


@pytest.fixture
def author_headers(auth: Callable[[int], dict[str, str]], author: int) -> dict[str, str]:
    return auth(author)


@pytest.fixture
def remember_user(
    session_factory: async_sessionmaker[AsyncSession], new_user_id: Callable[[], int]
) -> Callable[..., Awaitable[tuple[int, str]]]:
    """Puts a user into the projection through the worker's handler, as a ``user.created``
    would; returns (id, username). Usernames are unique per call unless given."""
    handle = user_projection_handler(session_factory)

    async def remember(username: str | None = None) -> tuple[int, str]:
        user_id = new_user_id()
        name = username or f"u_{uuid.uuid4().hex[:12]}"
        await handle(Envelope.wrap(UserCreated(user_id=user_id, username=name), source="test"))
        return user_id, name

    return remember


@pytest.fixture
def outbox_events(engine: AsyncEngine) -> Callable[[str], Awaitable[list[Envelope]]]:
    """The envelopes the outbox holds for a subject, oldest first."""

    async def events(subject: str) -> list[Envelope]:
        async with engine.connect() as connection:
            rows = await connection.execute(
                text("SELECT payload FROM outbox_event WHERE subject = :subject ORDER BY seq"),
                {"subject": subject},
            )
            return [Envelope.model_validate(row[0]) for row in rows]

    return events
