"""Post Service application factories: the HTTP app
(``uvicorn --factory terrascale.posts.app:create_app``) and the event worker (``create_worker``)."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import timedelta

from fastapi import FastAPI

from terrascale.common.app import create_service_app
from terrascale.common.background import BackgroundWork, event_consumer, outbox_relay
from terrascale.common.db import transaction
from terrascale.common.events import EventSettings, load_event_settings
from terrascale.common.logging import get_logger
from terrascale.common.sharding import shard_databases, shard_map_refresher
from terrascale.posts import __version__
from terrascale.posts import service as post_service
from terrascale.posts.cache import PostCache
from terrascale.posts.config import PostSettings, get_settings
from terrascale.posts.consumer import CATEGORIES, CONSUMER_GROUP, user_projection_handler
from terrascale.posts.replication import with_replicas, worker_categories
from terrascale.posts.repository import PostRepository
from terrascale.posts.router import router as posts_router

logger = get_logger(__name__)

PURGE_BATCH_SIZE = 1000  # rows per transaction: short locks, whatever the backlog

DESCRIPTION = """\
Posts of TerraScale: writing them (with @mentions, #hashtags and links extracted), reading them
one at a time or in batches (cache-aside through Redis), deleting them, and each user's posts
newest first with Mastodon-style cursors. Writes take an access token (EdDSA JWT from the User
Service). Ids are 64-bit, time-sortable, and sent as strings. Errors are RFC 9457
`application/problem+json` documents.
"""


def create_app(
    settings: PostSettings | None = None, events: EventSettings | None = None
) -> FastAPI:
    settings = settings or get_settings()
    events = events or load_event_settings()
    app = create_service_app(
        settings=settings,
        title="TerraScale Post Service",
        version=__version__,
        description=DESCRIPTION,
        routers=[posts_router],
        resources=[shard_databases(settings)],
        background=[
            shard_map_refresher(settings),
            outbox_relay(events, engines=lambda app: app.state.shards.engines),
            idempotency_key_purger(settings),
        ],
    )
    if settings.jwt_public_key is None:  # after the factory, which configures logging
        logger.warning(
            "JWT_PUBLIC_KEY is not set; requests that need a signed-in user will fail",
            service=settings.service_name,
        )
    return app


def create_worker(
    settings: PostSettings | None = None, events: EventSettings | None = None
) -> FastAPI:
    """The app whose lifespan consumes ``user.*`` into the projection mentions resolve against;
    ``terrascale-posts worker`` runs it without serving HTTP."""
    settings = settings or get_settings()
    events = events or load_event_settings()
    return create_service_app(
        settings=settings,
        title="TerraScale Post Service worker",
        version=__version__,
        description=DESCRIPTION,
        routers=[],
        # With regions the worker also stores replicated posts, on their authors' shards.
        resources=[shard_databases(settings)] if settings.region_map is not None else [],
        background=[
            event_consumer(
                events,
                group=CONSUMER_GROUP,
                categories=worker_categories(settings, CATEGORIES),
                handler=lambda app: with_replicas(
                    user_projection_handler(app.state.session_factory),
                    lambda: app.state.shards,
                    lambda: PostCache(app.state.cache),
                ),
            )
        ],
    )


def idempotency_key_purger(settings: PostSettings) -> BackgroundWork:
    """Deletes expired idempotency keys every IDEMPOTENCY_PURGE_INTERVAL_SECONDS, in every shard
    database. Every replica runs one; that is harmless, as concurrent purges only skip rows
    another one deleted."""
    ttl = timedelta(seconds=settings.idempotency_key_ttl_seconds)

    async def run(app: FastAPI, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                for database in app.state.shards.databases:
                    purged = PURGE_BATCH_SIZE
                    while purged == PURGE_BATCH_SIZE and not stop.is_set():
                        async with transaction(database.session_factory) as session:
                            purged = await post_service.purge_expired_idempotency_keys(
                                posts=PostRepository(session), ttl=ttl, batch_size=PURGE_BATCH_SIZE
                            )
                        if purged:
                            logger.info(
                                "expired idempotency keys purged",
                                count=purged,
                                database=database.name,
                            )
            except Exception:
                logger.exception("idempotency key purge failed; retrying later")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    stop.wait(), timeout=settings.idempotency_purge_interval_seconds
                )

    return run
