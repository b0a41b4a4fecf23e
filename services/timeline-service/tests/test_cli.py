"""The ``terrascale-timelines`` command: configuration errors, migrations, and the worker and
the production entrypoint run as real processes."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import Callable, Iterator

import httpx
import pytest
from sqlalchemy.engine import URL

from terrascale.common.db import create_engine, create_session_factory
from terrascale.common.events import Envelope, EventSettings, FollowCreated, connect_bus
from terrascale.common.testing.helpers import (
    free_port,
    list_tables,
    service_environment,
    stop_and_read,
    wait_for_health,
)
from terrascale.common.testing.plugin import ServerAddresses, fresh_database
from terrascale.timelines.cli import main
from terrascale.timelines.config import TimelineSettings, get_settings
from terrascale.timelines.repository import TimelineRepository


@pytest.fixture(autouse=True)
def fresh_settings_cache() -> Iterator[None]:
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def test_bad_configuration_exits_2_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("CELEBRITY_FOLLOWER_THRESHOLD", "-1")
    assert main(["migrate"]) == 2
    error = capsys.readouterr().err
    assert "CELEBRITY_FOLLOWER_THRESHOLD" in error
    assert "Traceback" not in error


def test_migrate_and_downgrade_commands(
    monkeypatch: pytest.MonkeyPatch, test_servers: ServerAddresses
) -> None:
    with fresh_database(test_servers.postgres, prefix="test_timelines_cli") as url:
        monkeypatch.setenv("DATABASE_URL", url.render_as_string(hide_password=False))
        assert main(["migrate"]) == 0
        assert "known_post" in asyncio.run(list_tables(url))
        assert main(["downgrade", "base"]) == 0
        assert asyncio.run(list_tables(url)) == {"alembic_version"}


async def _publish_follow(
    settings: TimelineSettings, prefix: str, follower: int, followee: int
) -> None:
    events = EventSettings.model_validate({"event_key_prefix": prefix, "event_partitions": 2})
    bus = await connect_bus(events, settings)
    try:
        await bus.publish(
            [
                Envelope.wrap(
                    FollowCreated(follower_id=follower, followee_id=followee), source="test"
                )
            ]
        )
    finally:
        await bus.close()


async def _follows(settings: TimelineSettings, follower: int, followee: int) -> bool:
    engine = create_engine(settings)
    try:
        async with create_session_factory(engine)() as session:
            found = await TimelineRepository(session).followers_after(followee, after=0, limit=10)
            return follower in found
    finally:
        await engine.dispose()


@pytest.mark.slow
def test_worker_consumes_until_sigterm(
    test_servers: ServerAddresses,
    redis_key_prefix: str,
    database_url: URL,
    build_settings: Callable[..., TimelineSettings],
) -> None:
    settings = build_settings()
    follower, followee = 7_000_000_000_001, 7_000_000_000_002
    process = subprocess.Popen(
        [sys.executable, "-m", "terrascale.timelines", "worker"],
        env=service_environment(database_url, test_servers, redis_key_prefix),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        asyncio.run(_publish_follow(settings, redis_key_prefix, follower, followee))
        deadline = time.monotonic() + 20
        while not asyncio.run(_follows(settings, follower, followee)):
            assert process.poll() is None, "the worker exited"
            assert time.monotonic() < deadline, "the worker did not apply the follow"
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
    jwt_public_key: str,
    auth: Callable[[int], dict[str, str]],
) -> None:
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    with fresh_database(test_servers.postgres, prefix="test_timelines_start") as url:
        env = service_environment(
            url,
            test_servers,
            redis_key_prefix,
            HOST="127.0.0.1",
            PORT=str(port),
            WEB_CONCURRENCY="2",
            JWT_PUBLIC_KEY=jwt_public_key,
        )
        process = subprocess.Popen(
            [sys.executable, "-m", "terrascale.timelines", "start"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        try:
            wait_for_health(base_url, process, timeout=30)
            home = httpx.get(f"{base_url}/timelines/home", headers=auth(7_000_000_000_003))
            assert home.status_code == 200, home.text
            assert home.json() == []
            assert httpx.get(f"{base_url}/ready").status_code == 200
        finally:
            log = stop_and_read(process)
        assert process.returncode == 0, log
        assert "Running upgrade" in log
        assert "Booting worker" in log
