"""The ``terrascale-posts`` command: configuration errors, migrations, the worker, and the
production entrypoint (Gunicorn with Uvicorn workers) run as real processes."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from terrascale.common.events import Envelope, EventSettings, UserCreated, connect_bus
from terrascale.common.testing.helpers import (
    free_port,
    list_tables,
    metric_value,
    wait_for_health,
)
from terrascale.common.testing.plugin import ServerAddresses, fresh_database
from terrascale.posts.cli import main
from terrascale.posts.config import PostSettings, get_settings
from terrascale.posts.models import KnownUser


@pytest.fixture(autouse=True)
def fresh_settings_cache() -> None:
    get_settings.cache_clear()


def test_defaults() -> None:
    settings = PostSettings(_env_file=None)  # pyright: ignore[reportCallIssue]
    assert settings.port == 5002
    assert settings.postgres_db == "terrascale_posts"
    assert settings.cache_key_prefix == "terrascale:posts:"
    assert settings.otel_service_name == "post-service"
    assert settings.idempotency_key_ttl_seconds == 24 * 3600


def test_bad_configuration_exits_2_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("IDEMPOTENCY_KEY_TTL_SECONDS", "forever")
    assert main(["migrate"]) == 2
    error = capsys.readouterr().err
    assert "IDEMPOTENCY_KEY_TTL_SECONDS" in error
    assert "Traceback" not in error


def test_migrate_and_downgrade_commands(
    monkeypatch: pytest.MonkeyPatch, test_servers: ServerAddresses
) -> None:
    with fresh_database(test_servers.postgres, prefix="test_posts_cli") as url:
        monkeypatch.setenv("DATABASE_URL", url.render_as_string(hide_password=False))
        assert main(["migrate"]) == 0
        assert "post" in asyncio.run(list_tables(url))
        assert main(["downgrade", "base"]) == 0
        assert "post" not in asyncio.run(list_tables(url))


async def _known(url: URL, user_id: int) -> str | None:
    engine = create_async_engine(url, poolclass=NullPool)
    try:
        async with engine.connect() as connection:
            return await connection.scalar(
                select(KnownUser.username).where(KnownUser.id == user_id)
            )
    finally:
        await engine.dispose()


@pytest.mark.slow
async def test_worker_command_consumes_until_sigterm(
    database_url: URL,
    test_servers: ServerAddresses,
    redis_key_prefix: str,
    settings: PostSettings,
    tmp_path: Path,
) -> None:
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": database_url.render_as_string(hide_password=False),
        "REDIS_HOST": test_servers.redis.host,
        "REDIS_PORT": str(test_servers.redis.port),
        "REDIS_DB": str(test_servers.redis.db),
        "CACHE_KEY_PREFIX": redis_key_prefix,
        "EVENT_KEY_PREFIX": redis_key_prefix,
        "EVENT_POLL_SECONDS": "0.05",
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "metrics"),
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "terrascale.posts",
        "worker",
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    user_id, username = 4242424242, f"cli_{uuid.uuid4().hex[:8]}"
    try:
        bus = await connect_bus(
            EventSettings(_env_file=None, event_key_prefix=redis_key_prefix),  # pyright: ignore[reportCallIssue]
            settings,
        )
        try:
            await bus.publish(
                [Envelope.wrap(UserCreated(user_id=user_id, username=username), source="t")]
            )
        finally:
            await bus.close()
        for _ in range(300):
            if await _known(database_url, user_id) == username:
                break
            await asyncio.sleep(0.05)
        assert await _known(database_url, user_id) == username
        # The worker serves its operations endpoints; its metrics count what it consumed.
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            assert (await client.get("/ready")).status_code == 200
            metrics = (await client.get("/metrics")).text
        handled = {"group": "post-service", "type": "user.created", "outcome": "ack"}
        assert metric_value(metrics, "terrascale_events_handled_total", **handled) == 1
        assert (
            metric_value(metrics, "terrascale_event_delay_seconds_count", group="post-service") == 1
        )
    finally:
        process.send_signal(signal.SIGTERM)
        output, _ = await asyncio.wait_for(process.communicate(), timeout=30)
    assert process.returncode == 0, output.decode()
    assert "event consumer stopped" in output.decode()


@pytest.mark.slow
def test_start_migrates_then_serves_with_gunicorn(
    test_servers: ServerAddresses,
    redis_key_prefix: str,
    settings: PostSettings,
    author: int,
    author_headers: dict[str, str],
) -> None:
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    with fresh_database(test_servers.postgres, prefix="test_posts_start") as url:
        env = {
            **os.environ,
            "DATABASE_URL": url.render_as_string(hide_password=False),
            "REDIS_HOST": test_servers.redis.host,
            "REDIS_PORT": str(test_servers.redis.port),
            "REDIS_DB": str(test_servers.redis.db),
            "CACHE_KEY_PREFIX": redis_key_prefix,
            "EVENT_KEY_PREFIX": redis_key_prefix,
            "JWT_PUBLIC_KEY": settings.jwt_public_key or "",
            "HOST": "127.0.0.1",
            "PORT": str(port),
            "WEB_CONCURRENCY": "2",
        }
        process = subprocess.Popen(
            [sys.executable, "-m", "terrascale.posts", "start"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        try:
            wait_for_health(base_url, process, timeout=60)
            created = httpx.post(
                f"{base_url}/posts", json={"text": "served #gunicorn"}, headers=author_headers
            )
            assert created.status_code == 201, created.text
            post = created.json()
            # Two workers share one cache and one database: any of them answers the same.
            for _ in range(3):
                assert httpx.get(f"{base_url}/posts/{post['id']}").json() == post
            assert httpx.get(f"{base_url}/users/{author}/posts").json() == [post]
            assert httpx.get(f"{base_url}/ready").status_code == 200
        finally:
            process.send_signal(signal.SIGTERM)
            output, _ = process.communicate(timeout=30)
        assert process.returncode == 0, output.decode()
        log = output.decode()
        assert "Running upgrade" in log
        assert "Booting worker" in log
