from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable, Iterator

import pytest
from alembic import command
from asgi_lifespan import LifespanManager
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi import FastAPI
from httpx import ASGITransport, AsyncClient
from sqlalchemy.engine import URL

from terrascale.common.events import EventSettings
from terrascale.common.keys import generate_private_key_pem, load_private_key
from terrascale.common.migrations import alembic_config
from terrascale.common.testing.plugin import ServerAddresses, fresh_database
from terrascale.users.app import create_app
from terrascale.users.cli import SCRIPT_LOCATION
from terrascale.users.config import UserSettings


@pytest.fixture(scope="session")
def database_url(test_servers: ServerAddresses) -> Iterator[URL]:
    with fresh_database(test_servers.postgres, prefix="test_users") as url:
        command.upgrade(alembic_config(script_location=SCRIPT_LOCATION, database_url=url), "head")
        yield url


SIGNING_KEY_PEM = generate_private_key_pem()


def build_settings(
    *, database_url: URL, servers: ServerAddresses, key_prefix: str, **overrides: object
) -> UserSettings:
    values: dict[str, object] = {
        "database_url": database_url.render_as_string(hide_password=False),
        "redis_host": servers.redis.host,
        "redis_port": servers.redis.port,
        "redis_db": servers.redis.db,
        "cache_key_prefix": key_prefix,
        "cache_ttl_seconds": 60,
        "log_level": "INFO",
        "log_format": "json",
        "jwt_private_key": SIGNING_KEY_PEM,
    }
    values.update(overrides)
    return UserSettings(_env_file=None, **values)  # pyright: ignore[reportCallIssue]


@pytest.fixture
def settings(
    database_url: URL, test_servers: ServerAddresses, redis_key_prefix: str
) -> UserSettings:
    return build_settings(
        database_url=database_url, servers=test_servers, key_prefix=redis_key_prefix
    )


def build_event_settings(key_prefix: str) -> EventSettings:
    return EventSettings(_env_file=None, event_key_prefix=key_prefix)  # pyright: ignore[reportCallIssue]


@pytest.fixture
def event_settings(redis_key_prefix: str) -> EventSettings:
    return build_event_settings(redis_key_prefix)


@pytest.fixture
async def app(settings: UserSettings, event_settings: EventSettings) -> AsyncIterator[FastAPI]:
    application = create_app(settings, event_settings)
    async with LifespanManager(application):
        yield application


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[AsyncClient]:
    async with AsyncClient(transport=ASGITransport(app=app), base_url="http://testserver") as c:
        yield c


@pytest.fixture
def username() -> str:
    return f"user_{uuid.uuid4().hex[:16]}"


@pytest.fixture
async def signed_up(client: AsyncClient, username: str) -> dict[str, str]:
    """A user with a password: {"id", "username", "password"}."""
    password = f"pw-{uuid.uuid4().hex}"
    response = await client.post("/users/", json={"username": username, "password": password})
    assert response.status_code == 201
    return {**response.json(), "password": password}


@pytest.fixture
async def access_token(client: AsyncClient, signed_up: dict[str, str]) -> str:
    response = await client.post(
        "/auth/token",
        data={"username": signed_up["username"], "password": signed_up["password"]},
    )
    assert response.status_code == 200
    return response.json()["access_token"]


SettingsFactory = Callable[..., UserSettings]


@pytest.fixture
def make_settings(
    database_url: URL, test_servers: ServerAddresses, redis_key_prefix: str
) -> SettingsFactory:
    """Settings for this test's database and key prefix; ``servers``, ``database_url`` and any
    setting can be overridden (to point at a closed port, say)."""

    def make(
        *,
        servers: ServerAddresses | None = None,
        database_url: URL = database_url,
        **overrides: object,
    ) -> UserSettings:
        return build_settings(
            database_url=database_url,
            servers=servers or test_servers,
            key_prefix=redis_key_prefix,
            **overrides,
        )

    return make


@pytest.fixture
def make_app() -> Callable[[UserSettings], FastAPI]:
    """An app whose events stay under the settings' own key prefix."""

    def make(settings: UserSettings) -> FastAPI:
        return create_app(settings, build_event_settings(settings.cache_key_prefix))

    return make


@pytest.fixture(scope="session")
def signing_key() -> Ed25519PrivateKey:
    return load_private_key(SIGNING_KEY_PEM)
