"""The ``terrascale-graph`` command: configuration errors, migrations, the event worker and the
production entrypoint (Gunicorn with Uvicorn workers), run as real processes."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from terrascale.common.events import Envelope, EventSettings, UserCreated, connect_bus
from terrascale.common.testing.helpers import (
    free_port,
    list_tables,
    service_environment,
    stop_and_read,
    wait_for_health,
)
from terrascale.common.testing.plugin import ServerAddresses, fresh_database
from terrascale.graph.cli import main
from terrascale.graph.config import GraphSettings, get_settings


@pytest.fixture(autouse=True)
def fresh_settings_cache() -> Iterator[None]:
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def test_bad_configuration_exits_2_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("USER_SERVICE_URL", "not a url")
    assert main(["migrate"]) == 2
    error = capsys.readouterr().err
    assert "USER_SERVICE_URL" in error
    assert "Traceback" not in error


def test_migrate_and_downgrade_commands(
    monkeypatch: pytest.MonkeyPatch, test_servers: ServerAddresses
) -> None:
    with fresh_database(test_servers.postgres, prefix="test_graph_cli") as url:
        monkeypatch.setenv("DATABASE_URL", url.render_as_string(hide_password=False))
        assert main(["migrate"]) == 0
        assert "following_edge" in asyncio.run(list_tables(url))
        assert main(["downgrade", "base"]) == 0
        assert asyncio.run(list_tables(url)) == {"alembic_version"}


async def _projected(url: URL, user_id: int) -> bool:
    engine = create_async_engine(url, poolclass=NullPool)
    try:
        async with engine.connect() as connection:
            found = await connection.execute(
                text("SELECT 1 FROM known_user WHERE id = :id"), {"id": user_id}
            )
            return found.first() is not None
    finally:
        await engine.dispose()


async def _publish_user_created(servers: ServerAddresses, prefix: str, user_id: int) -> None:
    service = GraphSettings(
        _env_file=None,  # pyright: ignore[reportCallIssue]
        redis_host=servers.redis.host,
        redis_port=servers.redis.port,
        redis_db=servers.redis.db,
    )
    events = EventSettings(_env_file=None, event_key_prefix=prefix, event_partitions=2)  # pyright: ignore[reportCallIssue]
    bus = await connect_bus(events, service)
    try:
        await bus.publish(
            [Envelope.wrap(UserCreated(user_id=user_id, username="cli"), source="user-service")]
        )
    finally:
        await bus.close()


@pytest.mark.slow
def test_worker_consumes_until_sigterm(
    test_servers: ServerAddresses, redis_key_prefix: str, database_url: URL
) -> None:
    user_id = 4_242_424_242_424
    process = subprocess.Popen(
        [sys.executable, "-m", "terrascale.graph", "worker"],
        env=service_environment(database_url, test_servers, redis_key_prefix),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        asyncio.run(_publish_user_created(test_servers, redis_key_prefix, user_id))
        deadline = time.monotonic() + 20
        while not asyncio.run(_projected(database_url, user_id)):
            assert process.poll() is None, "the worker exited"
            assert time.monotonic() < deadline, "the worker did not project the user"
            time.sleep(0.1)
    finally:
        log = stop_and_read(process)
    assert process.returncode == 0, log
    assert "event consumer started" in log
    assert "event consumer stopped" in log


@pytest.mark.slow
def test_start_migrates_then_serves_with_gunicorn(
    test_servers: ServerAddresses,
    redis_key_prefix: str,
    user_service: Any,
    jwt_public_key: str,
    auth: Callable[[int], dict[str, str]],
) -> None:
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    follower, followee = 5_555_555_555_001, 5_555_555_555_002
    user_service.add(followee)
    with fresh_database(test_servers.postgres, prefix="test_graph_start") as url:
        env = service_environment(
            url,
            test_servers,
            redis_key_prefix,
            HOST="127.0.0.1",
            PORT=str(port),
            WEB_CONCURRENCY="2",
            JWT_PUBLIC_KEY=jwt_public_key,
            USER_SERVICE_URL=user_service.url,
        )
        process = subprocess.Popen(
            [sys.executable, "-m", "terrascale.graph", "start"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        try:
            wait_for_health(base_url, process, timeout=30)
            followed = httpx.put(
                f"{base_url}/users/{follower}/following/{followee}",
                headers=auth(follower),
            )
            assert followed.status_code == 200, followed.text
            counts = httpx.get(f"{base_url}/users/{followee}/counts").json()
            assert counts["followers"] == 1
            assert httpx.get(f"{base_url}/ready").status_code == 200
        finally:
            log = stop_and_read(process)
        assert process.returncode == 0, log
        assert "Running upgrade" in log
        assert "Booting worker" in log
