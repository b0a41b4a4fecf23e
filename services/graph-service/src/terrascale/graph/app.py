"""Graph Service application factories: ``create_app`` serves HTTP
(``uvicorn --factory terrascale.graph.app:create_app``); ``create_worker`` consumes events."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from contextlib import asynccontextmanager

import httpx
from fastapi import FastAPI

from terrascale.common.app import create_service_app
from terrascale.common.background import event_consumer, outbox_relay
from terrascale.common.events import EventSettings, load_event_settings
from terrascale.common.logging import get_logger
from terrascale.common.sharding import shard_databases, shard_map_refresher
from terrascale.graph import __version__
from terrascale.graph.config import GraphSettings, get_settings
from terrascale.graph.consumer import CATEGORIES, CONSUMER_GROUP, graph_events_handler
from terrascale.graph.directory import UserDirectory
from terrascale.graph.replication import with_replicas
from terrascale.graph.router import router as graph_router

logger = get_logger(__name__)

DESCRIPTION = """\
Who follows whom in TerraScale. Follows are stored in both directions, each on its owner's
shard, so both lists are one index range scan; counts are kept exact with each change. Lists are
newest first with opaque cursors (`next_cursor`, and a `Link: rel="next"` header). Following and
unfollowing need the signed-in user's access token; reads are public. Ids are 64-bit and sent as
strings. Errors are RFC 9457 `application/problem+json` documents.
"""


def create_app(
    settings: GraphSettings | None = None, events: EventSettings | None = None
) -> FastAPI:
    settings = settings or get_settings()
    events = events or load_event_settings()
    app = create_service_app(
        settings=settings,
        title="TerraScale Graph Service",
        version=__version__,
        description=DESCRIPTION,
        routers=[graph_router],
        resources=[shard_databases(settings)],
        background=[
            shard_map_refresher(settings),
            outbox_relay(events, engines=lambda app: app.state.shards.engines),
        ],
    )
    _open_user_directory(app, settings)
    if settings.jwt_public_key is None:  # after the factory has configured logging
        logger.warning(
            "JWT_PUBLIC_KEY is not set; follow and unfollow will fail until it is",
            service=settings.service_name,
        )
    return app


def create_worker(
    settings: GraphSettings | None = None, events: EventSettings | None = None
) -> FastAPI:
    """The app whose lifespan runs the event consumer (``terrascale-graph worker``): the user
    projection, and the followee's side of every follow change."""
    settings = settings or get_settings()
    events = events or load_event_settings()
    return create_service_app(
        settings=settings,
        title="TerraScale Graph Service worker",
        version=__version__,
        description="Consumes user events into the known_user projection and keeps the "
        "followee's side of each follow in step.",
        routers=[],
        resources=[shard_databases(settings)],
        background=[
            shard_map_refresher(settings),
            event_consumer(
                events,
                group=CONSUMER_GROUP,
                categories=CATEGORIES,
                handler=lambda app: with_replicas(
                    graph_events_handler(app.state.shards), lambda: app.state.shards
                ),
            ),
        ],
    )


def _open_user_directory(app: FastAPI, settings: GraphSettings) -> None:
    """One pooled HTTP client to the User Service per process, opened and closed around the
    shared lifespan (which has no hook for resources of a single service)."""
    shared_lifespan = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncGenerator[None]:
        timeout = settings.user_service_timeout_seconds
        async with httpx.AsyncClient(
            base_url=str(settings.user_service_url),
            timeout=httpx.Timeout(timeout),
            # Idle connections go before the User Service's 5 s keep-alive closes them.
            limits=httpx.Limits(
                max_connections=50, max_keepalive_connections=10, keepalive_expiry=3.0
            ),
        ) as client:
            app.state.user_directory = UserDirectory(client=client, timeout_seconds=timeout)
            async with shared_lifespan(app):  # it keeps its resources on app.state, no state
                yield

    app.router.lifespan_context = lifespan
