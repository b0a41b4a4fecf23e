"""Notification Service application factories: ``create_app`` serves HTTP
(``uvicorn --factory terrascale.notifications.app:create_app``); ``create_worker`` consumes
events into notifications."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from terrascale.common.app import create_service_app
from terrascale.common.background import event_consumer
from terrascale.common.events import EventSettings, load_event_settings
from terrascale.common.logging import get_logger
from terrascale.common.regions import locality
from terrascale.notifications import __version__
from terrascale.notifications.config import NotificationSettings, get_settings
from terrascale.notifications.consumer import (
    CATEGORIES,
    CONSUMER_GROUP,
    notification_events_handler,
)
from terrascale.notifications.router import STREAM_PATH
from terrascale.notifications.router import router as notification_router
from terrascale.notifications.wakeups import (
    WakeUpHub,
    WakeUpPublisher,
    create_subscription_redis,
)

logger = get_logger(__name__)

DESCRIPTION = """\
What happened to you in TerraScale: who followed you, mentioned you or replied to you. Each
user's notifications are numbered 1, 2, 3, ...; those numbers are the ids, the cursors
(`max_id`, `since_id`, `min_id`, with `Link` headers) and the live stream's event ids, so a
reconnecting client (`Last-Event-ID`) gets exactly what it missed. Unread counts are exact.
Every endpoint needs the signed-in user's access token. Ids are 64-bit and sent as strings.
Errors are RFC 9457 `application/problem+json` documents.
"""


def create_app(settings: NotificationSettings | None = None) -> FastAPI:
    settings = settings or get_settings()
    app = create_service_app(
        settings=settings,
        title="TerraScale Notification Service",
        version=__version__,
        description=DESCRIPTION,
        routers=[notification_router],
        # A live stream is open for as long as its client listens: not a request to shed.
        long_lived_paths=[notification_router.prefix + STREAM_PATH],
    )
    _run_wake_up_hub(app, settings)
    if settings.jwt_public_key is None:  # after the factory has configured logging
        logger.warning(
            "JWT_PUBLIC_KEY is not set; every notification endpoint fails until it is",
            service=settings.service_name,
        )
    return app


def create_worker(
    settings: NotificationSettings | None = None, events: EventSettings | None = None
) -> FastAPI:
    """The app whose lifespan runs the follow and post consumer (``terrascale-notifications
    worker``)."""
    settings = settings or get_settings()
    events = events or load_event_settings()
    key_prefix = settings.cache_key_prefix
    return create_service_app(
        settings=settings,
        title="TerraScale Notification Service worker",
        version=__version__,
        description="Consumes follow and post events into notifications.",
        routers=[],
        background=[
            event_consumer(
                events,
                group=CONSUMER_GROUP,
                categories=CATEGORIES,
                handler=lambda app: notification_events_handler(
                    app.state.session_factory,
                    WakeUpPublisher(app.state.redis, key_prefix=key_prefix),
                    locality(settings.region_map),
                ),
            )
        ],
    )


def _run_wake_up_hub(app: FastAPI, settings: NotificationSettings) -> None:
    """One Redis subscription per process, feeding every stream the process serves; opened and
    closed around the shared lifespan (which has no hook for a single service's resources)."""
    shared_lifespan = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncGenerator[None]:
        redis = create_subscription_redis(settings)
        hub = WakeUpHub(redis, key_prefix=settings.cache_key_prefix)
        app.state.wake_up_hub = hub
        stop = asyncio.Event()
        task = asyncio.create_task(hub.run(stop), name="stream-wake-ups")
        try:
            async with shared_lifespan(app):  # it keeps its resources on app.state, no state
                yield
        finally:
            # Nothing is in hand between messages: cancelling loses no work.
            stop.set()
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await redis.aclose()

    app.router.lifespan_context = lifespan
