"""Fixtures of the Graph Service suite: a migrated database, settings confined to the test's
Redis key prefix, access tokens signed with a session key pair, a stand-in User Service served
over real HTTP, and users known to the projection."""

from __future__ import annotations

import random
import threading
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
import pytest
import uvicorn
from alembic import command
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from httpx import ASGITransport, AsyncClient
from sqlalchemy import text
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from terrascale.common.auth import ACCESS_TOKEN_TYPE, ALGORITHM
from terrascale.common.events import EventSettings
from terrascale.common.ids import compose_id
from terrascale.common.keys import generate_private_key_pem, load_private_key, public_key_pem
from terrascale.common.migrations import alembic_config
from terrascale.common.testing.helpers import PROBLEM_JSON, free_port
from terrascale.common.testing.plugin import ServerAddresses, fresh_database
from terrascale.graph.app import create_app
from terrascale.graph.cli import SCRIPT_LOCATION
from terrascale.graph.config import GraphSettings

SIGNING_KEY = load_private_key(generate_private_key_pem())
PUBLIC_KEY_PEM = public_key_pem(SIGNING_KEY)


# --- database ------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def database_url(test_servers: ServerAddresses) -> Iterator[URL]:
    with fresh_database(test_servers.postgres, prefix="test_graph") as url:
        command.upgrade(alembic_config(script_location=SCRIPT_LOCATION, database_url=url), "head")
        yield url


@pytest.fixture
async def engine(database_url: URL) -> AsyncIterator[AsyncEngine]:
    """Direct SQL for checks the API does not expose (outbox rows, COUNT(*) of edges)."""
    engine = create_async_engine(database_url, poolclass=NullPool)
    yield engine
    await engine.dispose()


Sql = Callable[..., Awaitable[list[Any]]]


@pytest.fixture
def sql(engine: AsyncEngine) -> Sql:
    async def run(statement: str, **params: object) -> list[Any]:
        async with engine.begin() as connection:
            result = await connection.execute(text(statement), params)
            return list(result.all()) if result.returns_rows else []

    return run


# --- ids, users and tokens -----------------------------------------------------------------


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


@pytest.fixture
def known_user(sql: Sql) -> Callable[[], Awaitable[int]]:
    """Make a user the projection knows (as if its user.created event had been consumed)."""

    async def make() -> int:
        user_id = new_user_id()
        await sql(
            "INSERT INTO known_user (id, username, created_at) VALUES (:id, :name, now())",
            id=user_id,
            name=f"u{user_id}"[:30],
        )
        return user_id

    return make


IssueToken = Callable[..., str]


def issue_token(
    user_id: int | str,
    *,
    ttl: timedelta = timedelta(minutes=15),
    now: datetime | None = None,
    key: Any = SIGNING_KEY,
    token_type: str = ACCESS_TOKEN_TYPE,
    **claims: object,
) -> str:
    """An access token as the User Service issues them (EdDSA, ``typ: at+jwt``)."""
    issued_at = now or datetime.now(UTC)
    payload: dict[str, object] = {
        "sub": str(user_id),
        "iss": "terrascale",
        "aud": "terrascale",
        "iat": issued_at,
        "exp": issued_at + ttl,
        "jti": uuid.uuid4().hex,
        **claims,
    }
    return jwt.encode(payload, key, algorithm=ALGORITHM, headers={"typ": token_type})


@pytest.fixture
def token() -> IssueToken:
    return issue_token


@pytest.fixture
def jwt_public_key() -> str:
    """The PEM that verifies every token of this session (JWT_PUBLIC_KEY)."""
    return PUBLIC_KEY_PEM


@pytest.fixture
def auth() -> Callable[[int], dict[str, str]]:
    """Authorization headers of a signed-in user."""
    return lambda user_id: {"Authorization": f"Bearer {issue_token(user_id)}"}


# --- a stand-in User Service, over real HTTP -----------------------------------------------


class StubUserService:
    """Answers ``GET /users/{id}`` like the User Service: 200 for ids in ``users``, a
    user-not-found problem otherwise; ids in ``broken`` get a 500, ids in ``garbled`` a 200
    whose body is not a user. ``GET /users?ids=...`` lists the known ones, the same way broken
    by any id in ``broken`` or ``garbled``."""

    def __init__(self) -> None:
        self.users: dict[int, str] = {}
        self.broken: set[int] = set()
        self.garbled: set[int] = set()
        self.lookups: list[int] = []
        self.batches: list[list[int]] = []
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.app = Starlette(
            routes=[
                Route("/users", self.read_users),
                Route("/users/{user_id:int}", self.read_user),
            ]
        )

    def add(self, user_id: int, username: str | None = None) -> None:
        self.users[user_id] = username or f"stub_{user_id}"[:30]

    def _public(self, user_id: int) -> dict[str, object]:
        return {
            "id": str(user_id),
            "username": self.users[user_id],
            "display_name": None,
            "bio": None,
            "cached": False,
        }

    async def read_users(self, request: Request) -> Response:
        ids = [int(part) for part in request.query_params["ids"].split(",")]
        self.batches.append(ids)
        if self.broken.intersection(ids):
            return Response("boom", status_code=500)
        if self.garbled.intersection(ids):
            return JSONResponse([{"id": "not-an-id"}])
        return JSONResponse([self._public(user_id) for user_id in ids if user_id in self.users])

    async def read_user(self, request: Request) -> Response:
        user_id: int = request.path_params["user_id"]
        self.lookups.append(user_id)
        if user_id in self.broken:
            return Response("boom", status_code=500)
        if user_id in self.garbled:
            return JSONResponse({"id": "not-an-id"})
        if user_id in self.users:
            return JSONResponse(self._public(user_id))
        problem = {
            "type": "urn:terrascale:problem:user-not-found",
            "title": "User not found",
            "status": 404,
            "detail": f"No user has id {user_id}.",
            "instance": request.url.path,
        }
        return JSONResponse(problem, status_code=404, media_type=PROBLEM_JSON)


@pytest.fixture(scope="session")
def user_service() -> Iterator[StubUserService]:
    stub = StubUserService()
    server = uvicorn.Server(
        uvicorn.Config(
            stub.app, host="127.0.0.1", port=stub.port, lifespan="off", log_level="error"
        )
    )
    thread = threading.Thread(target=server.run, name="stub-user-service", daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "the stub User Service did not start"
        time.sleep(0.02)
    yield stub
    server.should_exit = True
    thread.join(timeout=10)


# --- settings and apps ---------------------------------------------------------------------


MakeSettings = Callable[..., GraphSettings]


@pytest.fixture
def make_settings(
    database_url: URL,
    test_servers: ServerAddresses,
    redis_key_prefix: str,
    user_service: StubUserService,
) -> MakeSettings:
    def build(**overrides: object) -> GraphSettings:
        values: dict[str, object] = {
            "database_url": database_url.render_as_string(hide_password=False),
            "redis_host": test_servers.redis.host,
            "redis_port": test_servers.redis.port,
            "redis_db": test_servers.redis.db,
            "cache_key_prefix": redis_key_prefix,
            "log_level": "INFO",
            "log_format": "json",
            "jwt_public_key": PUBLIC_KEY_PEM,
            "user_service_url": user_service.url,
        }
        values.update(overrides)
        return GraphSettings(_env_file=None, **values)  # pyright: ignore[reportCallIssue]

    return build


@pytest.fixture
def settings(make_settings: MakeSettings) -> GraphSettings:
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
async def app(settings: GraphSettings, event_settings: EventSettings) -> AsyncIterator[FastAPI]:
    application = create_app(settings, event_settings)
    async with LifespanManager(application):
        yield application


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[AsyncClient]:
    async with AsyncClient(transport=ASGITransport(app=app), base_url="http://testserver") as c:
        yield c
