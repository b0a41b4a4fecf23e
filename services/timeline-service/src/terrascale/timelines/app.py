"""Timeline Service application factories: ``create_app`` serves HTTP
(``uvicorn --factory terrascale.timelines.app:create_app``); ``create_worker`` consumes events
and fans posts out."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from contextlib import asynccontextmanager

import httpx
from fastapi import FastAPI

from terrascale.common.app import Resource, create_service_app
from terrascale.common.background import event_consumer
from terrascale.common.db import create_engine, create_session_factory
from terrascale.common.events import EventSettings, load_event_settings
from terrascale.common.logging import get_logger
from terrascale.common.regions import locality
from terrascale.timelines import __version__
from terrascale.timelines.cache import HydrationCache
from terrascale.timelines.config import TimelineSettings, get_settings
from terrascale.timelines.consumer import CATEGORIES, CONSUMER_GROUP, timeline_events_handler
from terrascale.timelines.hydration import Hydrator
from terrascale.timelines.router import router as timeline_router
from terrascale.timelines.service import Timelines
from terrascale.timelines.store import TimelineStore

logger = get_logger(__name__)

DESCRIPTION = """\
Home timelines of TerraScale: the posts of the people you follow, newest first, with their
authors. Posts are fanned out on write into a capped Redis sorted set per active user; posts of
authors with very many followers are merged in at read time instead; a timeline that is missing
(new user, inactive for too long, Redis flushed) is rebuilt before it is answered. Reads need
the signed-in user's access token. Ids are 64-bit and sent as strings. Errors are RFC 9457
`application/problem+json` documents.
"""
SECONDS_PER_DAY = 86_400


def create_app(settings: TimelineSettings | None = None) -> FastAPI:
    settings = settings or get_settings()
    app = create_service_app(
        settings=settings,
        title="TerraScale Timeline Service",
        version=__version__,
        description=DESCRIPTION,
        routers=[timeline_router],
        resources=[_timelines(settings), _hydrator(settings)],
    )
    if settings.jwt_public_key is None:  # after the factory has configured logging
        logger.warning(
            "JWT_PUBLIC_KEY is not set; home timelines will answer 401 until it is",
            service=settings.service_name,
        )
    return app


def create_worker(
    settings: TimelineSettings | None = None, events: EventSettings | None = None
) -> FastAPI:
    """The app whose lifespan runs the post and follow consumer (``terrascale-timelines
    worker``)."""
    settings = settings or get_settings()
    events = events or load_event_settings()
    return create_service_app(
        settings=settings,
        title="TerraScale Timeline Service worker",
        version=__version__,
        description="Consumes post and follow events into projections and home timelines.",
        routers=[],
        resources=[_timelines(settings)],
        background=[
            event_consumer(
                events,
                group=CONSUMER_GROUP,
                categories=CATEGORIES,
                handler=lambda app: timeline_events_handler(app.state.timelines),
            )
        ],
    )


def _timelines(settings: TimelineSettings) -> Resource:
    @asynccontextmanager
    async def open_timelines(app: FastAPI) -> AsyncGenerator[None]:
        reads = create_engine(settings, autocommit=True, pre_ping=False, pool_name="read")
        app.state.timelines = Timelines(
            session_factory=app.state.session_factory,
            reads=create_session_factory(reads),
            store=TimelineStore(
                app.state.redis,
                key_prefix=settings.cache_key_prefix,
                max_posts=settings.timeline_max_posts,
                active_seconds=settings.timeline_active_days * SECONDS_PER_DAY,
            ),
            cache=HydrationCache(
                app.state.redis,
                key_prefix=settings.cache_key_prefix,
                post_seconds=settings.post_cache_seconds,
                author_seconds=settings.author_cache_seconds,
            ),
            celebrity_follower_threshold=settings.celebrity_follower_threshold,
            fanout_batch_size=settings.fanout_batch_size,
            is_local=locality(settings.region_map),
        )
        try:
            yield
        finally:
            await reads.dispose()

    return open_timelines


def _hydrator(settings: TimelineSettings) -> Resource:
    """One pooled HTTP client per upstream per process."""

    @asynccontextmanager
    async def open_clients(app: FastAPI) -> AsyncGenerator[None]:
        timeout = httpx.Timeout(settings.upstream_timeout_seconds)
        # Idle connections are dropped before the upstream's 5 s keep-alive ends, so the pool
        # rarely hands out one the server is closing.
        limits = httpx.Limits(
            max_connections=100, max_keepalive_connections=20, keepalive_expiry=3.0
        )
        async with (
            httpx.AsyncClient(
                base_url=str(settings.post_service_url), timeout=timeout, limits=limits
            ) as posts,
            httpx.AsyncClient(
                base_url=str(settings.user_service_url), timeout=timeout, limits=limits
            ) as users,
        ):
            app.state.hydrator = Hydrator(
                posts=posts,
                users=users,
                cache=app.state.timelines.cache,
                timeout_seconds=settings.upstream_timeout_seconds,
            )
            yield

    return open_clients
