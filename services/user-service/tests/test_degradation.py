"""Failures of the service's dependencies: Redis down degrades, PostgreSQL down fails fast."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import AsyncGenerator, Generator
from contextlib import asynccontextmanager, contextmanager

import pytest
from asgi_lifespan import LifespanManager
from httpx import ASGITransport, AsyncClient
from sqlalchemy.engine import URL

from terrascale.common.embedded import EmbeddedValkey, RedisAddress
from terrascale.common.testing.plugin import ServerAddresses
from terrascale.users.app import create_app
from terrascale.users.config import UserSettings

from .conftest import build_settings

PROBLEM_JSON = "application/problem+json"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def silent_listener() -> Generator[int]:
    """A TCP port that accepts connections and never answers: a hung server."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(64)
        yield listener.getsockname()[1]


@asynccontextmanager
async def serve(settings: UserSettings) -> AsyncGenerator[AsyncClient]:
    app = create_app(settings)
    async with (
        LifespanManager(app),
        AsyncClient(transport=ASGITransport(app=app), base_url="http://testserver") as client,
    ):
        yield client


def log_events(output: str, event: str) -> list[dict[str, object]]:
    lines = (json.loads(line) for line in output.splitlines() if line.startswith("{"))
    return [line for line in lines if line.get("event") == event]


async def test_redis_down_serves_from_postgres_and_warns_once(
    database_url: URL,
    test_servers: ServerAddresses,
    redis_key_prefix: str,
    username: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    closed = ServerAddresses(test_servers.postgres, RedisAddress("127.0.0.1", free_port()))
    settings = build_settings(
        database_url=database_url, servers=closed, key_prefix=redis_key_prefix
    )
    async with serve(settings) as client:
        created = await client.post("/users/", json={"username": username})
        assert created.status_code == 201
        user_id = created.json()["id"]
        reads = [await client.get(f"/users/{user_id}") for _ in range(5)]
        assert {r.status_code for r in reads} == {200}
        assert all(r.json()["cached"] is False for r in reads)

        ready = await client.get("/ready")
        assert ready.status_code == 503
        assert ready.headers["content-type"] == PROBLEM_JSON
        assert ready.json()["checks"]["postgres"] == "ok"
        assert ready.json()["checks"]["redis"] != "ok"
        assert "redis" in ready.json()["detail"]

    warnings = log_events(capsys.readouterr().out, "cache unavailable; serving from the database")
    assert len(warnings) == 1
    assert warnings[0]["level"] == "warning"


@pytest.mark.slow
async def test_redis_restart_is_survived_without_restarting_the_service(
    database_url: URL,
    test_servers: ServerAddresses,
    redis_key_prefix: str,
    username: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    port = free_port()
    valkey = EmbeddedValkey(port=port)
    address = valkey.start()
    servers = ServerAddresses(test_servers.postgres, address)
    settings = build_settings(
        database_url=database_url,
        servers=servers,
        key_prefix=redis_key_prefix,
        cache_retry_after_seconds=0.2,
    )
    try:
        async with serve(settings) as client:
            user_id = (await client.post("/users/", json={"username": username})).json()["id"]
            await client.get(f"/users/{user_id}")
            assert (await client.get(f"/users/{user_id}")).json()["cached"] is True

            valkey.stop()
            during = [await client.get(f"/users/{user_id}") for _ in range(3)]
            assert [r.json()["cached"] for r in during] == [False, False, False]
            assert (
                await client.post("/users/", json={"username": username + "_2"})
            ).status_code == 201
            assert (await client.get("/ready")).status_code == 503

            valkey.start()
            await asyncio.sleep(0.3)  # past the circuit's retry interval
            await client.get(f"/users/{user_id}")  # refills the (empty) restarted cache
            assert (await client.get(f"/users/{user_id}")).json()["cached"] is True
            assert (await client.get("/ready")).status_code == 200
    finally:
        valkey.stop()

    output = capsys.readouterr().out
    assert len(log_events(output, "cache unavailable; serving from the database")) == 1
    assert len(log_events(output, "cache recovered")) == 1


@pytest.mark.parametrize("failure", ["refused", "hung"])
async def test_postgres_down_answers_503_quickly(
    test_servers: ServerAddresses, redis_key_prefix: str, username: str, failure: str
) -> None:
    with silent_listener() as hung_port:
        port = free_port() if failure == "refused" else hung_port
        unreachable = URL.create("postgresql+asyncpg", "postgres", host="127.0.0.1", port=port)
        settings = build_settings(
            database_url=unreachable.set(database="terrascale_users"),
            servers=test_servers,
            key_prefix=redis_key_prefix,
            db_connect_timeout_seconds=0.5,
            ready_timeout_seconds=0.5,
        )
        async with serve(settings) as client:
            for request in (
                client.build_request("POST", "/users/", json={"username": username}),
                client.build_request("GET", "/users/123456789"),
            ):
                started = time.monotonic()
                response = await client.send(request)
                assert time.monotonic() - started < 3
                assert response.status_code == 503
                assert response.headers["content-type"] == PROBLEM_JSON
                assert response.headers["retry-after"] == "1"
                assert response.json()["type"] == "urn:terrascale:problem:dependency-unavailable"

            started = time.monotonic()
            ready = await client.get("/ready")
            assert time.monotonic() - started < 2
            assert ready.status_code == 503
            assert ready.json()["checks"]["redis"] == "ok"
            assert ready.json()["checks"]["postgres"] != "ok"
            assert (await client.get("/health")).status_code == 200


async def test_cached_user_is_served_while_postgres_is_down(
    database_url: URL, test_servers: ServerAddresses, redis_key_prefix: str, username: str
) -> None:
    healthy = build_settings(
        database_url=database_url, servers=test_servers, key_prefix=redis_key_prefix
    )
    async with serve(healthy) as client:
        user_id = (await client.post("/users/", json={"username": username})).json()["id"]
        await client.get(f"/users/{user_id}")

    unreachable = URL.create(
        "postgresql+asyncpg", "postgres", host="127.0.0.1", port=free_port(), database="x"
    )
    broken = build_settings(
        database_url=unreachable, servers=test_servers, key_prefix=redis_key_prefix
    )
    async with serve(broken) as client:
        response = await client.get(f"/users/{user_id}")
        assert response.status_code == 200
        assert response.json()["username"] == username
        assert response.json()["cached"] is True
