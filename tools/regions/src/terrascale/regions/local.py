"""One region's five services and four event workers in this process, over loopback HTTP: what
the two-region tests and the figures run (``dev.py regions`` starts real processes instead).

A region is its own databases, its own Redis (or key prefix of a shared one), its own event
streams; the regions share only the split of shards (REGIONS) and the token signing key.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import Any

import httpx
from alembic import command
from sqlalchemy.engine import URL

from terrascale.common.auth import AccessTokenIssuer
from terrascale.common.embedded import RedisAddress
from terrascale.common.events import EventSettings
from terrascale.common.keys import load_private_key, public_key_pem
from terrascale.common.migrations import alembic_config
from terrascale.common.testing.helpers import free_port, serve_app, serve_over_http
from terrascale.graph import app as graph_app
from terrascale.graph.cli import SCRIPT_LOCATION as GRAPH_MIGRATIONS
from terrascale.graph.config import GraphSettings
from terrascale.notifications import app as notification_app
from terrascale.notifications.cli import SCRIPT_LOCATION as NOTIFICATION_MIGRATIONS
from terrascale.notifications.config import NotificationSettings
from terrascale.posts import app as post_app
from terrascale.posts.cli import SCRIPT_LOCATION as POST_MIGRATIONS
from terrascale.posts.config import PostSettings
from terrascale.regions.replicator import RegionBus
from terrascale.timelines import app as timeline_app
from terrascale.timelines.cli import SCRIPT_LOCATION as TIMELINE_MIGRATIONS
from terrascale.timelines.config import TimelineSettings
from terrascale.users import app as user_app
from terrascale.users.cli import SCRIPT_LOCATION as USER_MIGRATIONS
from terrascale.users.config import UserSettings

MIGRATIONS: Mapping[str, str] = {
    "users": USER_MIGRATIONS,
    "graph": GRAPH_MIGRATIONS,
    "posts": POST_MIGRATIONS,
    "timelines": TIMELINE_MIGRATIONS,
    "notifications": NOTIFICATION_MIGRATIONS,
}
DEMO_REGIONS = "eu=0-511,us=512-1023"
# The sharded services' second databases: their shards are split between these and their own.
SECOND_SHARD_DATABASES: Mapping[str, str] = {"posts": "posts_shard1", "graph": "graph_shard1"}
POST_SHARD_DATABASE = SECOND_SHARD_DATABASES["posts"]
DATABASES = (*MIGRATIONS, *SECOND_SHARD_DATABASES.values())


def migrate(databases: Mapping[str, URL]) -> None:
    """Apply every service's migrations to its databases (blocking: Alembic runs its own loop)."""
    service_of = {second: service for service, second in SECOND_SHARD_DATABASES.items()}
    for name, url in databases.items():
        location = MIGRATIONS[service_of.get(name, name)]
        command.upgrade(alembic_config(script_location=location, database_url=url), "head")


@dataclass
class LocalRegion:
    """Start with ``start()``, stop with ``stop()``; start again with the same databases and
    Redis to bring the region back after an outage (its ports stay the same)."""

    name: str
    databases: Mapping[str, URL]
    redis: RedisAddress
    key_prefix: str
    private_key_pem: str
    regions: str = DEMO_REGIONS
    db_pool_size: int = 1  # nine apps per region against a shared PostgreSQL
    log_level: str = "WARNING"
    ports: dict[str, int] = field(default_factory=lambda: {n: free_port() for n in MIGRATIONS})
    clients: dict[str, httpx.AsyncClient] = field(default_factory=dict[str, httpx.AsyncClient])
    _stack: AsyncExitStack | None = None

    @property
    def events(self) -> EventSettings:
        # model_validate skips the environment: exactly these settings.
        return EventSettings.model_validate(
            {"event_key_prefix": self.key_prefix, "event_partitions": 2, "event_poll_seconds": 0.1}
        )

    @property
    def bus(self) -> RegionBus:
        return RegionBus(name=self.name, redis_url=self.redis.url, events=self.events)

    def url(self, service: str) -> str:
        return f"http://127.0.0.1:{self.ports[service]}"

    def _settings(self, service: str) -> dict[str, Any]:
        return {
            "database_url": self.databases[service].render_as_string(hide_password=False),
            "redis_host": self.redis.host,
            "redis_port": self.redis.port,
            "redis_db": self.redis.db,
            "cache_key_prefix": f"{self.key_prefix}{service}:",
            "jwt_public_key": public_key_pem(load_private_key(self.private_key_pem)),
            "log_level": self.log_level,
            "db_pool_size": self.db_pool_size,
            # Overflow closes when returned. A post write holds its shard's transaction while
            # it reads the user projection and a replied-to post: three at once, at most.
            "db_max_overflow": 2,
            "user_service_url": self.url("users"),
            "post_service_url": self.url("posts"),
            "rate_limit_writes_per_minute": 0,
            "rate_limit_signin_per_minute": 0,
            "region": self.name,
            "regions": self.regions,
        }

    def _second_databases(self, service: str) -> list[str]:
        second = self.databases.get(SECOND_SHARD_DATABASES[service])
        return [] if second is None else [second.render_as_string(hide_password=False)]

    async def start(self) -> None:
        events = self.events
        users = UserSettings.model_validate(
            self._settings("users") | {"jwt_private_key": self.private_key_pem}
        )
        graph = GraphSettings.model_validate(
            self._settings("graph") | {"shard_databases": self._second_databases("graph")}
        )
        posts = PostSettings.model_validate(
            self._settings("posts") | {"shard_databases": self._second_databases("posts")}
        )
        timelines = TimelineSettings.model_validate(self._settings("timelines"))
        notifications = NotificationSettings.model_validate(self._settings("notifications"))
        apps = {
            "users": user_app.create_app(users, events),
            "graph": graph_app.create_app(graph, events),
            "posts": post_app.create_app(posts, events),
            "timelines": timeline_app.create_app(timelines),
            "notifications": notification_app.create_app(notifications),
        }
        workers = [
            graph_app.create_worker(graph, events),
            post_app.create_worker(posts, events),
            timeline_app.create_worker(timelines, events),
            notification_app.create_worker(notifications, events),
        ]
        stack = AsyncExitStack()
        try:
            for name, app in apps.items():
                url = await stack.enter_async_context(serve_over_http(app, port=self.ports[name]))
                self.clients[name] = await stack.enter_async_context(
                    httpx.AsyncClient(base_url=url, timeout=30)
                )
            for worker in workers:
                await stack.enter_async_context(serve_app(worker))
        except BaseException:
            await stack.aclose()
            raise
        self._stack = stack

    async def stop(self) -> None:
        """Every service and worker stops (in-flight events are finished and acknowledged)."""
        if self._stack is not None:
            stack, self._stack = self._stack, None
            self.clients.clear()
            await stack.aclose()


@dataclass
class TwoRegions:
    eu: LocalRegion
    us: LocalRegion
    private_key_pem: str

    def auth(self, user_id: int | str) -> dict[str, str]:
        """An access token as either region's User Service issues it (they share the key)."""
        issuer = AccessTokenIssuer(
            load_private_key(self.private_key_pem), "terrascale", "terrascale", 3600
        )
        return {"Authorization": f"Bearer {issuer.issue(int(user_id))}"}


async def wait_for(
    condition: Any, *, seconds: float, interval: float = 0.05, what: str = "condition"
) -> float:
    """Poll the async ``condition`` until it returns true; the seconds it took. TimeoutError
    names ``what`` when it never does."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    while not await condition():
        if loop.time() - started > seconds:
            raise TimeoutError(f"{what} not seen within {seconds}s")
        await asyncio.sleep(interval)
    return loop.time() - started
