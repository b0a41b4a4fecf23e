"""Small helpers for service test suites (import them; they are not fixtures)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import AsyncGenerator, Generator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

import httpx
import pytest
import uvicorn
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from httpx import ASGITransport, AsyncClient
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import Connection, MetaData, text
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from terrascale.common.testing.plugin import ServerAddresses

PROBLEM_JSON = "application/problem+json"


def free_port() -> int:
    """A loopback port nothing listens on (connections to it are refused)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for_health(base_url: str, process: subprocess.Popen[bytes], timeout: float) -> None:
    """Poll ``/health`` of a server started as a subprocess; fail if it exits or stays down."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail("server exited during start-up")
        try:
            if httpx.get(f"{base_url}/health", timeout=1).status_code == 200:  # noqa: PLR2004
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    pytest.fail("server did not become healthy")


@contextmanager
def silent_listener() -> Generator[int]:
    """A TCP port that accepts connections and never answers: a hung server."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(64)
        yield listener.getsockname()[1]


@asynccontextmanager
async def serve_app(app: FastAPI) -> AsyncGenerator[AsyncClient]:
    """Run the app's lifespan and give an HTTP client talking to it in-process."""
    async with (
        LifespanManager(app),
        AsyncClient(transport=ASGITransport(app=app), base_url="http://testserver") as client,
    ):
        yield client


@asynccontextmanager
async def serve_over_http(app: FastAPI, *, port: int | None = None) -> AsyncGenerator[str]:
    """Run the app (lifespan included) in a real Uvicorn server on loopback, in this event loop;
    yields its base URL. For what in-process transports cannot do: streaming responses, and
    services calling each other by URL."""
    port = port or free_port()
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        lifespan="on",
        log_config=None,
        access_log=False,
        proxy_headers=False,  # as in production (server.py): TRUSTED_PROXIES decides
        # Longer than any test client keeps an idle connection (httpx: 5 s). With Uvicorn's own
        # 5 s, a busy shared event loop can close a connection in the turn a client reuses it,
        # and that request fails with a ReadError.
        timeout_keep_alive=60,
    )
    server = uvicorn.Server(config)
    serving = asyncio.create_task(server.serve())
    try:
        while not server.started:
            if serving.done():
                serving.result()  # raises what stopped it
                raise RuntimeError("the server stopped before it started")
            await asyncio.sleep(0.01)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await serving


def service_environment(
    url: URL, servers: ServerAddresses, prefix: str, **extra: str
) -> dict[str, str]:
    """The environment of a service process started by a test: its database, the test's Redis
    under the test's key prefix (cache and events), short event polls, JSON logs."""
    return {
        **os.environ,
        "DATABASE_URL": url.render_as_string(hide_password=False),
        "REDIS_HOST": servers.redis.host,
        "REDIS_PORT": str(servers.redis.port),
        "REDIS_DB": str(servers.redis.db),
        "CACHE_KEY_PREFIX": prefix,
        "EVENT_KEY_PREFIX": prefix,
        "EVENT_PARTITIONS": "2",
        "EVENT_POLL_SECONDS": "0.1",
        "LOG_FORMAT": "json",
        # Workers serve their operations endpoints too: never on a port another run may hold.
        "HOST": "127.0.0.1",
        "PORT": str(free_port()),
        **extra,
    }


def stop_and_read(process: subprocess.Popen[bytes]) -> str:
    """SIGTERM (what an orchestrator sends), then everything the process wrote."""
    process.send_signal(signal.SIGTERM)
    output, _ = process.communicate(timeout=30)
    return output.decode()


def metric_value(exposition: str, name: str, **labels: str) -> float:
    """The sum of the samples of ``name`` whose labels include ``labels`` in a ``/metrics``
    page (0 when there are none: an unused counter has no sample yet)."""
    return sum(
        sample.value
        for family in text_string_to_metric_families(exposition)
        for sample in family.samples
        if sample.name == name and labels.items() <= sample.labels.items()
    )


def log_events(output: str, event: str) -> list[dict[str, Any]]:
    """The JSON log lines of ``output`` whose ``event`` is ``event``."""
    lines = (json.loads(line) for line in output.splitlines() if line.startswith("{"))
    return [line for line in lines if line.get("event") == event]


async def list_tables(url: URL) -> set[str]:
    engine = create_async_engine(url, poolclass=NullPool)
    try:
        async with engine.connect() as connection:
            rows = await connection.execute(
                text("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
            )
            return {row[0] for row in rows}
    finally:
        await engine.dispose()


async def schema_differences(url: URL, metadata: MetaData) -> list[object]:
    """What Alembic's autogenerate would change to make the database match ``metadata``: empty
    when the models and the migrations agree."""

    def compare(connection: Connection) -> list[object]:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        return list(compare_metadata(context, metadata))

    engine = create_async_engine(url, poolclass=NullPool)
    try:
        async with engine.connect() as connection:
            return await connection.run_sync(compare)
    finally:
        await engine.dispose()
