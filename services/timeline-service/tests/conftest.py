"""Fixtures of the Timeline Service suite: a database migrated once per session, the service's
rules over it and a Redis key prefix of the test's own, an HTTP app, and access tokens.

Helpers are fixtures rather than importable functions: every service has a ``tests`` folder,
and they are not packages, so they cannot import from one another without colliding.
"""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
import pytest
from alembic import command
from asgi_lifespan import LifespanManager
from fastapi import FastAPI, Response
from fastapi.responses import JSONResponse
from httpx import ASGITransport, AsyncClient
from redis.asyncio import Redis
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

from terrascale.common.auth import ACCESS_TOKEN_TYPE, ALGORITHM
from terrascale.common.db import create_session_factory
from terrascale.common.ids import MAX_SHARD, compose_id
from terrascale.common.keys import generate_private_key_pem, load_private_key, public_key_pem
from terrascale.common.migrations import alembic_config
from terrascale.common.testing.helpers import free_port
from terrascale.common.testing.plugin import ServerAddresses, fresh_database
from terrascale.timelines.app import create_app
from terrascale.timelines.cache import HydrationCache
from terrascale.timelines.cli import SCRIPT_LOCATION
from terrascale.timelines.config import TimelineSettings
from terrascale.timelines.service import Timelines
from terrascale.timelines.store import TimelineStore

SIGNING_KEY = load_private_key(generate_private_key_pem())
PUBLIC_KEY_PEM = public_key_pem(SIGNING_KEY)
MAX_POSTS = 50


@pytest.fixture(scope="session")
def database_url(test_servers: ServerAddresses) -> Iterator[URL]:
    with fresh_database(test_servers.postgres, prefix="test_timelines") as url:
        command.upgrade(alembic_config(script_location=SCRIPT_LOCATION, database_url=url), "head")
        yield url


@pytest.fixture
def build_settings(
    database_url: URL, test_servers: ServerAddresses, redis_key_prefix: str
) -> Callable[..., TimelineSettings]:
    def build(**overrides: object) -> TimelineSettings:
        values: dict[str, object] = {
            "database_url": database_url.render_as_string(hide_password=False),
            "redis_host": test_servers.redis.host,
            "redis_port": test_servers.redis.port,
            "redis_db": test_servers.redis.db,
            "cache_key_prefix": redis_key_prefix,
            "log_level": "INFO",
            "log_format": "json",
            "jwt_public_key": PUBLIC_KEY_PEM,
            # Nothing listens here unless a test says otherwise.
            "post_service_url": f"http://127.0.0.1:{free_port()}",
            "user_service_url": f"http://127.0.0.1:{free_port()}",
            "timeline_max_posts": MAX_POSTS,
        }
        values.update(overrides)
        return TimelineSettings.model_validate(values)

    return build


@pytest.fixture
async def engine(database_url: URL) -> AsyncIterator[AsyncEngine]:
    engine = create_async_engine(database_url, poolclass=NullPool)
    yield engine
    await engine.dispose()


@pytest.fixture
async def redis(test_servers: ServerAddresses) -> AsyncIterator[Redis]:
    client = Redis(
        host=test_servers.redis.host, port=test_servers.redis.port, db=test_servers.redis.db
    )
    yield client
    await client.aclose()


@pytest.fixture
def store(redis: Redis, redis_key_prefix: str) -> TimelineStore:
    return TimelineStore(
        redis, key_prefix=redis_key_prefix, max_posts=MAX_POSTS, active_seconds=3600
    )


@pytest.fixture
async def autocommit_engine(database_url: URL) -> AsyncIterator[AsyncEngine]:
    engine = create_async_engine(database_url, poolclass=NullPool, isolation_level="AUTOCOMMIT")
    yield engine
    await engine.dispose()


@pytest.fixture
def hydration_cache(redis: Redis, redis_key_prefix: str) -> HydrationCache:
    return HydrationCache(redis, key_prefix=redis_key_prefix, post_seconds=60, author_seconds=60)


@pytest.fixture
def build_timelines(
    engine: AsyncEngine,
    autocommit_engine: AsyncEngine,
    store: TimelineStore,
    hydration_cache: HydrationCache,
) -> Callable[..., Timelines]:
    def build(*, celebrity_follower_threshold: int = 100, fanout_batch_size: int = 7) -> Timelines:
        return Timelines(
            session_factory=create_session_factory(engine),
            reads=create_session_factory(autocommit_engine),
            store=store,
            cache=hydration_cache,
            celebrity_follower_threshold=celebrity_follower_threshold,
            fanout_batch_size=fanout_batch_size,
        )

    return build


@pytest.fixture
def timelines(build_timelines: Callable[..., Timelines]) -> Timelines:
    """Small batches, so fan-out in tests spans several of them."""
    return build_timelines()


@pytest.fixture
def new_id() -> Callable[[], int]:
    """A fresh id in the shared layout (users and posts alike), increasing from call to call."""
    last = 0

    def mint() -> int:
        nonlocal last
        candidate = compose_id(
            created_at=datetime.now(UTC),
            shard=random.randrange(MAX_SHARD + 1),
            sequence=random.randrange(1024),
        )
        last = max(candidate, last + 1)
        return last

    return mint


@pytest.fixture
async def app(build_settings: Callable[..., TimelineSettings]) -> AsyncIterator[FastAPI]:
    application = create_app(build_settings())
    async with LifespanManager(application):
        yield application


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[AsyncClient]:
    async with AsyncClient(transport=ASGITransport(app=app), base_url="http://testserver") as c:
        yield c


@pytest.fixture(scope="session")
def jwt_public_key() -> str:
    """The PEM that verifies every token of this session (JWT_PUBLIC_KEY)."""
    return PUBLIC_KEY_PEM


@pytest.fixture
def auth() -> Callable[[int], dict[str, str]]:
    """Request headers with an access token for ``user_id``, signed as the User Service does."""

    def headers(user_id: int, **claims: Any) -> dict[str, str]:
        now = datetime.now(UTC)
        payload: dict[str, Any] = {
            "sub": str(user_id),
            "iss": "terrascale",
            "aud": "terrascale",
            "iat": now,
            "exp": now + timedelta(minutes=15),
            "jti": uuid.uuid4().hex,
            **claims,
        }
        token = jwt.encode(
            payload, SIGNING_KEY, algorithm=ALGORITHM, headers={"typ": ACCESS_TOKEN_TYPE}
        )
        return {"Authorization": f"Bearer {token}"}

    return headers


POSTS = {
    11: {"id": "11", "author_id": "1"},
    12: {"id": "12", "author_id": "2"},
    13: {"id": "13", "author_id": "1"},
}
AUTHORS = {1: {"id": "1", "username": "ada"}, 2: {"id": "2", "username": "bob"}}


def _post(post_id: int) -> dict[str, Any]:
    return {
        **POSTS[post_id],
        "text": f"post {post_id}",
        "reply_to": None,
        "mentions": [],
        "hashtags": [],
        "urls": [],
        "created_at": datetime(2026, 1, 1, tzinfo=UTC).isoformat(),
    }


def _upstream(mode: str) -> FastAPI:
    """One app answering as both upstreams; ``mode`` says how it misbehaves."""
    app = FastAPI()

    @app.get("/posts")
    async def posts(ids: str) -> Response:
        if mode == "posts-fail":
            return Response(status_code=500)
        if mode == "posts-garbage":
            return Response(content=b'{"not": "a list"}', media_type="application/json")
        if mode == "posts-slow":
            await asyncio.sleep(1)
        wanted = [int(part) for part in ids.split(",")]
        body = [_post(post_id) for post_id in wanted if post_id in POSTS]
        return JSONResponse(body)

    @app.get("/users")
    async def users(ids: str) -> Response:
        if mode == "users-fail":
            return Response(status_code=503)
        body = [AUTHORS[int(part)] for part in ids.split(",") if int(part) in AUTHORS]
        return JSONResponse(body)

    return app


@pytest.fixture
def upstream_app() -> Callable[[str], FastAPI]:
    """Builds a stand-in for the Post and User Services' batch reads (one app answers both):
    ``ok``, or a way to fail (``posts-fail``, ``posts-garbage``, ``posts-slow``, ``users-fail``).
    The real services are hydrated against in the suite of the whole system (tests/)."""
    return _upstream
