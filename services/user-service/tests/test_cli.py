"""The ``terrascale-users`` command: configuration errors, migrations, and the production
entrypoint (Gunicorn with Uvicorn workers) run as a real process."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from sqlalchemy.engine import URL

from terrascale.common.testing.helpers import (
    free_port,
    list_tables,
    metric_value,
    wait_for_health,
)
from terrascale.common.testing.plugin import ServerAddresses, fresh_database
from terrascale.users.cli import main
from terrascale.users.config import get_settings


@pytest.fixture(autouse=True)
def fresh_settings_cache() -> None:
    get_settings.cache_clear()


def test_bad_configuration_exits_2_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("CACHE_TTL_SECONDS", "forever")
    assert main(["migrate"]) == 2
    error = capsys.readouterr().err
    assert "CACHE_TTL_SECONDS" in error
    assert "Traceback" not in error


def test_migrate_and_downgrade_commands(
    monkeypatch: pytest.MonkeyPatch, test_servers: ServerAddresses
) -> None:
    with fresh_database(test_servers.postgres, prefix="test_cli") as url:
        monkeypatch.setenv("DATABASE_URL", url.render_as_string(hide_password=False))
        assert main(["migrate"]) == 0
        assert "user_account" in asyncio.run(list_tables(url))
        assert main(["downgrade", "base"]) == 0
        assert "user_account" not in asyncio.run(list_tables(url))


@pytest.mark.slow
def test_start_migrates_then_serves_with_gunicorn(
    test_servers: ServerAddresses, redis_key_prefix: str, tmp_path: Path
) -> None:
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    with fresh_database(test_servers.postgres, prefix="test_start") as url:
        env = {
            **os.environ,
            "DATABASE_URL": URL.render_as_string(url, hide_password=False),
            "REDIS_HOST": test_servers.redis.host,
            "REDIS_PORT": str(test_servers.redis.port),
            "REDIS_DB": str(test_servers.redis.db),
            "CACHE_KEY_PREFIX": redis_key_prefix,
            "EVENT_KEY_PREFIX": redis_key_prefix,
            "HOST": "127.0.0.1",
            "PORT": str(port),
            "WEB_CONCURRENCY": "2",
            "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "metrics"),
        }
        process = subprocess.Popen(
            [sys.executable, "-m", "terrascale.users", "start"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        try:
            wait_for_health(base_url, process, timeout=30)
            created = httpx.post(f"{base_url}/users/", json={"username": "gunicorn_user"})
            assert created.status_code == 201
            user_id = created.json()["id"]
            # Two workers share one cache: whichever answers, the second read is a hit.
            reads = [httpx.get(f"{base_url}/users/{user_id}").json()["cached"] for _ in range(3)]
            assert reads == [False, True, True]
            assert httpx.get(f"{base_url}/ready").status_code == 200
            # Whichever worker answers a scrape, it reports both workers' counts.
            reads_served = {"method": "GET", "route": "/users/{user_id}", "status": "200"}
            scrapes = [httpx.get(f"{base_url}/metrics").text for _ in range(6)]
            for metrics in scrapes:
                assert metric_value(metrics, "terrascale_http_requests_total", **reads_served) == 3
                cache = {"cache": "user"}
                assert metric_value(metrics, "terrascale_cache_lookups_total", **cache) == 3
            writers = {path.stem.rpartition("_")[2] for path in (tmp_path / "metrics").glob("*")}
            assert len(writers) >= 2
        finally:
            process.send_signal(signal.SIGTERM)
            output, _ = process.communicate(timeout=30)
        assert process.returncode == 0, output.decode()
        log = output.decode()
        assert "Running upgrade" in log
        assert "Booting worker" in log
