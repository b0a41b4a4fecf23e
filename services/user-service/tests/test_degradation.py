"""Failures of the service's dependencies: Redis down degrades, PostgreSQL down fails fast, and
both coming back are noticed without a restart."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from alembic import command
from fastapi import FastAPI
from sqlalchemy.engine import URL

from terrascale.common.embedded import EmbeddedPostgres, EmbeddedValkey, RedisAddress
from terrascale.common.migrations import alembic_config
from terrascale.common.testing.helpers import (
    PROBLEM_JSON,
    free_port,
    log_events,
    serve_app,
    silent_listener,
)
from terrascale.common.testing.plugin import ServerAddresses
from terrascale.users.cli import SCRIPT_LOCATION
from terrascale.users.config import UserSettings

MakeApp = Callable[[UserSettings], FastAPI]


async def test_redis_down_serves_from_postgres_and_warns_once(
    make_settings: Callable[..., UserSettings],
    make_app: MakeApp,
    test_servers: ServerAddresses,
    username: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    closed = ServerAddresses(test_servers.postgres, RedisAddress("127.0.0.1", free_port()))
    async with serve_app(make_app(make_settings(servers=closed))) as client:
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
    make_settings: Callable[..., UserSettings],
    make_app: MakeApp,
    test_servers: ServerAddresses,
    username: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    valkey = EmbeddedValkey(port=free_port())
    address = valkey.start()
    settings = make_settings(
        servers=ServerAddresses(test_servers.postgres, address), cache_retry_after_seconds=0.2
    )
    try:
        async with serve_app(make_app(settings)) as client:
            user_id = (await client.post("/users/", json={"username": username})).json()["id"]
            await client.get(f"/users/{user_id}")
            assert (await client.get(f"/users/{user_id}")).json()["cached"] is True

            valkey.stop()
            during = [await client.get(f"/users/{user_id}") for _ in range(3)]
            assert [r.json()["cached"] for r in during] == [False, False, False]
            second = await client.post("/users/", json={"username": username + "_2"})
            assert second.status_code == 201
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
    make_settings: Callable[..., UserSettings], make_app: MakeApp, username: str, failure: str
) -> None:
    with silent_listener() as hung_port:
        port = free_port() if failure == "refused" else hung_port
        unreachable = URL.create(
            "postgresql+asyncpg", "postgres", host="127.0.0.1", port=port, database="x"
        )
        settings = make_settings(
            database_url=unreachable, db_connect_timeout_seconds=0.5, ready_timeout_seconds=0.5
        )
        async with serve_app(make_app(settings)) as client:
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
    make_settings: Callable[..., UserSettings], make_app: MakeApp, username: str
) -> None:
    async with serve_app(make_app(make_settings())) as client:
        user_id = (await client.post("/users/", json={"username": username})).json()["id"]
        await client.get(f"/users/{user_id}")

    unreachable = URL.create(
        "postgresql+asyncpg", "postgres", host="127.0.0.1", port=free_port(), database="x"
    )
    async with serve_app(make_app(make_settings(database_url=unreachable))) as client:
        response = await client.get(f"/users/{user_id}")
        assert response.status_code == 200
        assert response.json()["username"] == username
        assert response.json()["cached"] is True


@pytest.mark.slow
async def test_postgres_restart_is_survived_without_restarting_the_service(
    make_settings: Callable[..., UserSettings],
    make_app: MakeApp,
    username: str,
    tmp_path: Path,
) -> None:
    postgres = EmbeddedPostgres(tmp_path / "postgres")
    url = postgres.start()
    try:
        config = alembic_config(script_location=SCRIPT_LOCATION, database_url=url)
        await asyncio.to_thread(command.upgrade, config, "head")  # it runs its own event loop
        settings = make_settings(
            database_url=url, db_connect_timeout_seconds=0.5, ready_timeout_seconds=0.5
        )
        async with serve_app(make_app(settings)) as client:
            created = await client.post("/users/", json={"username": username})
            assert created.status_code == 201
            user_id = created.json()["id"]
            assert (await client.get("/ready")).status_code == 200

            postgres.stop()
            refused = await client.post("/users/", json={"username": username + "_2"})
            assert refused.status_code == 503
            assert refused.headers["content-type"] == PROBLEM_JSON
            ready = await client.get("/ready")
            assert ready.status_code == 503
            assert ready.json()["checks"]["postgres"] != "ok"

            postgres.start()
            # Pooled connections died with the server; the pool replaces them on its own.
            assert (await client.get("/ready")).status_code == 200
            accepted = await client.post("/users/", json={"username": username + "_3"})
            assert accepted.status_code == 201
            assert (await client.get(f"/users/{user_id}")).json()["username"] == username
    finally:
        postgres.stop()
