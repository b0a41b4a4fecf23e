"""The ``terrascale-notifications`` command: configuration errors, migrations, the event worker
and the production entrypoint (Gunicorn with Uvicorn workers), run as real processes."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import Iterator

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from terrascale.common.events import Envelope, EventSettings, FollowCreated, connect_bus
from terrascale.common.testing.helpers import (
    free_port,
    list_tables,
    service_environment,
    stop_and_read,
    wait_for_health,
)
from terrascale.common.testing.plugin import ServerAddresses, fresh_database
from terrascale.notifications.cli import main
from terrascale.notifications.config import NotificationSettings, get_settings

from .conftest import Auth


@pytest.fixture(autouse=True)
def fresh_settings_cache() -> Iterator[None]:
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def test_bad_configuration_exits_2_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("NOTIFICATION_HEARTBEAT_SECONDS", "never")
    assert main(["migrate"]) == 2
    error = capsys.readouterr().err
    assert "NOTIFICATION_HEARTBEAT_SECONDS" in error
    assert "Traceback" not in error


def test_migrate_and_downgrade_commands(
    monkeypatch: pytest.MonkeyPatch, test_servers: ServerAddresses
) -> None:
    with fresh_database(test_servers.postgres, prefix="test_notifications_cli") as url:
        monkeypatch.setenv("DATABASE_URL", url.render_as_string(hide_password=False))
        assert main(["migrate"]) == 0
        assert "notification_state" in asyncio.run(list_tables(url))
        assert main(["downgrade", "base"]) == 0
        assert asyncio.run(list_tables(url)) == {"alembic_version"}


async def _notified(url: URL, recipient_id: int) -> bool:
    engine = create_async_engine(url, poolclass=NullPool)
    try:
        async with engine.connect() as connection:
            found = await connection.execute(
                text("SELECT 1 FROM notification WHERE recipient_id = :id"), {"id": recipient_id}
            )
            return found.first() is not None
    finally:
        await engine.dispose()


async def _publish_follow(servers: ServerAddresses, prefix: str, followee: int) -> None:
    service = NotificationSettings(
        _env_file=None,  # pyright: ignore[reportCallIssue]
        redis_host=servers.redis.host,
        redis_port=servers.redis.port,
        redis_db=servers.redis.db,
    )
    events = EventSettings(_env_file=None, event_key_prefix=prefix, event_partitions=2)  # pyright: ignore[reportCallIssue]
    bus = await connect_bus(events, service)
    try:
        follow = FollowCreated(follower_id=followee + 1, followee_id=followee)
        await bus.publish([Envelope.wrap(follow, source="graph-service")])
    finally:
        await bus.close()


@pytest.mark.slow
def test_worker_consumes_until_sigterm(
    test_servers: ServerAddresses, redis_key_prefix: str, database_url: URL
) -> None:
    followee = 4_242_424_242_424
    process = subprocess.Popen(
        [sys.executable, "-m", "terrascale.notifications", "worker"],
        env=service_environment(database_url, test_servers, redis_key_prefix),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        asyncio.run(_publish_follow(test_servers, redis_key_prefix, followee))
        deadline = time.monotonic() + 20
        while not asyncio.run(_notified(database_url, followee)):
            assert process.poll() is None, "the worker exited"
            assert time.monotonic() < deadline, "the worker did not store the notification"
            time.sleep(0.1)
    finally:
        log = stop_and_read(process)
    assert process.returncode == 0, log
    assert "event consumer started" in log
    assert "event consumer stopped" in log


@pytest.mark.slow
def test_start_migrates_then_serves_with_gunicorn(
    test_servers: ServerAddresses, redis_key_prefix: str, jwt_public_key: str, auth: Auth
) -> None:
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    me = 5_555_555_555_001
    with fresh_database(test_servers.postgres, prefix="test_notifications_start") as url:
        env = service_environment(
            url,
            test_servers,
            redis_key_prefix,
            HOST="127.0.0.1",
            PORT=str(port),
            WEB_CONCURRENCY="2",
            JWT_PUBLIC_KEY=jwt_public_key,
            NOTIFICATION_HEARTBEAT_SECONDS="0.2",
        )
        process = subprocess.Popen(
            [sys.executable, "-m", "terrascale.notifications", "start"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        try:
            wait_for_health(base_url, process, timeout=30)
            count = httpx.get(f"{base_url}/notifications/unread_count", headers=auth(me))
            assert count.json() == {"count": 0}
            assert httpx.get(f"{base_url}/ready").status_code == 200
            # The stream flows through Gunicorn's workers unbuffered: heartbeats arrive.
            with httpx.stream(
                "GET", f"{base_url}/notifications/stream", headers=auth(me), timeout=5
            ) as stream:
                assert stream.headers["content-type"].startswith("text/event-stream")
                assert next(line for line in stream.iter_lines() if line) == ": heartbeat"
        finally:
            log = stop_and_read(process)
        assert process.returncode == 0, log
        assert "Running upgrade" in log
        assert "Booting worker" in log
