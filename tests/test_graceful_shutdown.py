"""SIGTERM, as an orchestrator sends it, to real service and worker processes with work in hand.

The work is made slow from outside: a test transaction holds an exclusive lock on the table the
request (or the event handler) needs, so it is provably in flight when the signal arrives, and
it finishes once the lock is released. The event runner's own shutdown is tested in
``libs/common/tests/events/test_consumer.py``; these tests add the process around it.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import AsyncGenerator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
from redis.asyncio import Redis
from sqlalchemy import text
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from terrascale.common.events import Envelope, EventSettings, UserCreated, connect_bus
from terrascale.common.testing.helpers import service_environment, wait_for_health
from terrascale.common.testing.plugin import ServerAddresses, fresh_database
from terrascale.posts.config import PostSettings

pytestmark = pytest.mark.slow

LOCK_HELD_AFTER_SIGTERM_SECONDS = 1.5  # below DB_STATEMENT_TIMEOUT_SECONDS (5)


@asynccontextmanager
async def table_locked(url: URL, table: str) -> AsyncGenerator[None]:
    """An ACCESS EXCLUSIVE lock on ``table`` until the block exits: every statement touching
    the table waits for it."""
    engine = create_async_engine(url, poolclass=NullPool)
    try:
        async with engine.connect() as connection, connection.begin():
            await connection.execute(text(f'LOCK TABLE "{table}" IN ACCESS EXCLUSIVE MODE'))
            yield
    finally:
        await engine.dispose()


async def wait_for_lock_waiter(url: URL, within: float = 20) -> None:
    """Until some session of the database waits for a lock: the work is in flight."""
    engine = create_async_engine(url, poolclass=NullPool)
    try:
        deadline = time.monotonic() + within
        async with engine.connect() as connection:
            while time.monotonic() < deadline:
                waiting = await connection.scalar(
                    text(
                        "SELECT count(*) FROM pg_stat_activity "
                        "WHERE datname = current_database() AND wait_event_type = 'Lock'"
                    )
                )
                await connection.commit()
                if waiting:
                    return
                await asyncio.sleep(0.05)
    finally:
        await engine.dispose()
    pytest.fail("nothing ever waited for the lock")


@pytest.fixture
def database(test_servers: ServerAddresses) -> Iterator[URL]:
    """A fresh, empty database of this test's own (the processes migrate it)."""
    with fresh_database(test_servers.postgres, prefix="test_graceful") as url:
        yield url


def run_module(module: str, command: str, env: dict[str, str]) -> subprocess.Popen[bytes]:
    """The service's own command line, as its image runs it."""
    return subprocess.Popen(
        [sys.executable, "-m", module, command],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )


async def exit_code(process: subprocess.Popen[bytes], within: float = 30) -> tuple[int, str]:
    output, _ = await asyncio.to_thread(process.communicate, timeout=within)
    return process.returncode, output.decode()


async def test_sigterm_lets_a_slow_request_finish_then_the_service_exits_0(
    test_servers: ServerAddresses, database: URL, redis_key_prefix: str, tmp_path: Path
) -> None:
    env = service_environment(
        database,
        test_servers,
        redis_key_prefix,
        WEB_CONCURRENCY="2",
        PROMETHEUS_MULTIPROC_DIR=str(tmp_path / "metrics"),
    )
    base_url = f"http://127.0.0.1:{env['PORT']}"
    process = run_module("terrascale.users", "start", env)
    try:
        await asyncio.to_thread(wait_for_health, base_url, process, 60)
        async with httpx.AsyncClient(base_url=base_url, timeout=30) as client:
            created = await client.post("/users/", json={"username": "graceful_reader"})
            assert created.status_code == 201, created.text
            user_id = created.json()["id"]
            # An uncached read goes to PostgreSQL, where the lock holds it.
            redis = Redis(host=test_servers.redis.host, port=test_servers.redis.port)
            async for key in redis.scan_iter(match=f"{redis_key_prefix}*"):
                await redis.delete(key)
            await redis.aclose()

            async with table_locked(database, "user_account"):
                read = asyncio.create_task(client.get(f"/users/{user_id}"))
                await wait_for_lock_waiter(database)
                process.terminate()
                await asyncio.sleep(LOCK_HELD_AFTER_SIGTERM_SECONDS)
                assert not read.done()
                assert process.poll() is None  # draining, not gone
            answer = await read
        assert answer.status_code == 200, answer.text
        assert answer.json()["username"] == "graceful_reader"
    finally:
        if process.poll() is None:
            process.terminate()
        code, output = await exit_code(process)
    assert code == 0, output


async def _group_state(redis: Redis, stream_prefix: str, group: str) -> tuple[int, int]:
    """Pending and unread entries of ``group`` over the streams under ``stream_prefix``."""
    pending = unread = 0
    async for key in redis.scan_iter(match=f"{stream_prefix}*", _type="stream"):
        for info in await redis.xinfo_groups(key):
            if info["name"] in (group, group.encode()):
                pending += int(info["pending"])
                unread += int(info["lag"] or 0)
    return pending, unread


async def test_sigterm_lets_the_worker_finish_and_acknowledge_the_event_in_hand(
    test_servers: ServerAddresses, database: URL, redis_key_prefix: str, tmp_path: Path
) -> None:
    env = service_environment(
        database,
        test_servers,
        redis_key_prefix,
        # Long enough that a redelivery could not come from a claim within the test.
        EVENT_CLAIM_IDLE_SECONDS="60",
        PROMETHEUS_MULTIPROC_DIR=str(tmp_path / "metrics"),
    )
    migrated, output = await exit_code(run_module("terrascale.posts", "migrate", env))
    assert migrated == 0, output
    process = run_module("terrascale.posts", "worker", env)
    redis = Redis(host=test_servers.redis.host, port=test_servers.redis.port)
    events = EventSettings(
        _env_file=None,  # pyright: ignore[reportCallIssue]
        event_key_prefix=redis_key_prefix,
        event_partitions=2,
    )
    redis_settings = PostSettings(
        _env_file=None,  # pyright: ignore[reportCallIssue]
        redis_host=test_servers.redis.host,
        redis_port=test_servers.redis.port,
        redis_db=test_servers.redis.db,
    )
    bus = await connect_bus(events, redis_settings)
    try:
        await asyncio.to_thread(wait_for_health, f"http://127.0.0.1:{env['PORT']}", process, 60)
        user_id = 5151515151
        async with table_locked(database, "known_user"):
            await bus.publish(
                [
                    Envelope.wrap(
                        UserCreated(user_id=user_id, username="graceful_author"), source="t"
                    )
                ]
            )
            await wait_for_lock_waiter(database)
            streams = f"{redis_key_prefix}events:user:"
            assert await _group_state(redis, streams, "post-service") == (1, 0)
            process.terminate()
            await asyncio.sleep(LOCK_HELD_AFTER_SIGTERM_SECONDS)
            assert process.poll() is None  # finishing the event in hand
        code, output = await exit_code(process)
        assert code == 0, output
        assert "event consumer stopped" in output
        # Handled once, and acknowledged: nothing is left to deliver again.
        engine = create_async_engine(database, poolclass=NullPool)
        try:
            async with engine.connect() as connection:
                known = await connection.scalar(
                    text("SELECT username FROM known_user WHERE id = :id"), {"id": user_id}
                )
        finally:
            await engine.dispose()
        assert known == "graceful_author"
        assert await _group_state(redis, streams, "post-service") == (0, 0)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        await bus.close()
        await redis.aclose()
