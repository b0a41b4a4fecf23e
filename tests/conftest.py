"""Fixtures of the end-to-end suite: the whole system in one process. Every service runs over
real HTTP on loopback (they call each other by URL, and Server-Sent Events need a real stream),
with every worker and relay, one event backbone, real PostgreSQL and Redis."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Iterator
from contextlib import AsyncExitStack, ExitStack

import httpx
import pytest
from alembic import command
from redis.asyncio import Redis
from sqlalchemy.engine import URL

from e2e_system import System
from terrascale.common.events import EventSettings
from terrascale.common.keys import generate_private_key_pem, load_private_key, public_key_pem
from terrascale.common.migrations import alembic_config
from terrascale.common.testing.helpers import free_port, serve_app, serve_over_http
from terrascale.common.testing.plugin import ServerAddresses, fresh_database
from terrascale.graph import app as graph_app
from terrascale.graph.cli import SCRIPT_LOCATION as GRAPH_MIGRATIONS
from terrascale.graph.config import GraphSettings
from terrascale.notifications import app as notification_app
from terrascale.notifications.cli import SCRIPT_LOCATION as NOTIFICATION_MIGRATIONS
from terrascale.notifications.config import NotificationSettings
from terrascale.posts import app as post_app
from terrascale.posts.cli import SCRIPT_LOCATION as POST_MIGRATIONS
from terrascale.posts.config import PostSettings
from terrascale.timelines import app as timeline_app
from terrascale.timelines.cli import SCRIPT_LOCATION as TIMELINE_MIGRATIONS
from terrascale.timelines.config import TimelineSettings
from terrascale.users import app as user_app
from terrascale.users.cli import SCRIPT_LOCATION as USER_MIGRATIONS
from terrascale.users.config import UserSettings

MIGRATIONS = {
    "users": USER_MIGRATIONS,
    "graph": GRAPH_MIGRATIONS,
    "posts": POST_MIGRATIONS,
    "timelines": TIMELINE_MIGRATIONS,
    "notifications": NOTIFICATION_MIGRATIONS,
}


@pytest.fixture(scope="module")
def databases(test_servers: ServerAddresses) -> Iterator[dict[str, URL]]:
    with ExitStack() as stack:
        urls: dict[str, URL] = {}
        for name, location in MIGRATIONS.items():
            url = stack.enter_context(
                fresh_database(test_servers.postgres, prefix=f"test_e2e_{name}")
            )
            command.upgrade(alembic_config(script_location=location, database_url=url), "head")
            urls[name] = url
        yield urls


@pytest.fixture
def system_overrides() -> dict[str, dict[str, object]]:
    """Per-service settings a test module changes (override this fixture)."""
    return {}


@pytest.fixture
def system_workers() -> tuple[str, ...]:
    """The services whose event workers run (override to leave some out)."""
    return ("graph", "posts", "timelines", "notifications")


@pytest.fixture
async def system(
    databases: dict[str, URL],
    test_servers: ServerAddresses,
    redis_key_prefix: str,
    system_overrides: dict[str, dict[str, object]],
    system_workers: tuple[str, ...],
) -> AsyncGenerator[System]:
    private_pem = generate_private_key_pem()
    ports = {name: free_port() for name in MIGRATIONS}
    base = {name: f"http://127.0.0.1:{port}" for name, port in ports.items()}

    def shared(name: str) -> dict[str, object]:
        return {
            "database_url": databases[name].render_as_string(hide_password=False),
            "redis_host": test_servers.redis.host,
            "redis_port": test_servers.redis.port,
            "redis_db": test_servers.redis.db,
            "cache_key_prefix": f"{redis_key_prefix}{name}:",
            "jwt_public_key": public_key_pem(load_private_key(private_pem)),
            "log_level": "WARNING",
            # One app per service here, where a deployment runs two worker processes of each;
            # with the event workers (which also write: the graph's keeps the followee side of
            # each follow in step) and the timeline read pools, 11 pools of 9 stay within the
            # 100 connections of a shared PostgreSQL.
            "db_pool_size": 8,
            "db_max_overflow": 1,
            "user_service_url": base["users"],
            "post_service_url": base["posts"],
            # Hundreds of users sign up from 127.0.0.1 and write fast here; the limits have
            # their own tests (test_security.py sets them through system_overrides).
            "rate_limit_writes_per_minute": 0,
            "rate_limit_signin_per_minute": 0,
            **system_overrides.get(name, {}),
        }

    # model_validate skips the environment: these settings are exactly what is written here.
    events = EventSettings.model_validate(
        {"event_key_prefix": redis_key_prefix, "event_poll_seconds": 0.1}
    )
    users = UserSettings.model_validate(shared("users") | {"jwt_private_key": private_pem})
    graph = GraphSettings.model_validate(shared("graph"))
    posts = PostSettings.model_validate(shared("posts"))
    timelines = TimelineSettings.model_validate(shared("timelines"))
    notifications = NotificationSettings.model_validate(shared("notifications"))
    apps = {
        "users": user_app.create_app(users, events),
        "graph": graph_app.create_app(graph, events),
        "posts": post_app.create_app(posts, events),
        "timelines": timeline_app.create_app(timelines),
        "notifications": notification_app.create_app(notifications),
    }
    workers = {
        "graph": lambda: graph_app.create_worker(graph, events),
        "posts": lambda: post_app.create_worker(posts, events),
        "timelines": lambda: timeline_app.create_worker(timelines, events),
        "notifications": lambda: notification_app.create_worker(notifications, events),
    }
    async with AsyncExitStack() as stack:
        clients: dict[str, httpx.AsyncClient] = {}
        for name, app in apps.items():
            url = await stack.enter_async_context(serve_over_http(app, port=ports[name]))
            clients[name] = await stack.enter_async_context(
                httpx.AsyncClient(
                    base_url=url,
                    timeout=30,
                    limits=httpx.Limits(max_connections=64, max_keepalive_connections=64),
                )
            )
        for name in system_workers:
            await stack.enter_async_context(serve_app(workers[name]()))
        redis = Redis(
            host=test_servers.redis.host, port=test_servers.redis.port, db=test_servers.redis.db
        )
        stack.push_async_callback(redis.aclose)
        yield System(
            **clients,
            user_settings=users,
            timeline_settings=timelines,
            redis=redis,
            event_key_prefix=redis_key_prefix,
            databases=databases,
            private_key_pem=private_pem,
        )
