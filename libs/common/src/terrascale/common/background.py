"""Long-running work a service process does beside HTTP: the outbox relay and event consumers.

Each piece is started by the app's lifespan once the shared resources exist, and stopped through
one ``asyncio.Event`` at shutdown, so in-flight work finishes instead of being cut off.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from typing import Any

from fastapi import FastAPI
from opentelemetry.trace import Tracer
from sqlalchemy.ext.asyncio import AsyncEngine

from terrascale.common.events import ConsumerRunner, Handler, OutboxRelay, connect_bus
from terrascale.common.events.bus import EventBus
from terrascale.common.events.settings import EventSettings
from terrascale.common.events.waiting import wait_event
from terrascale.common.logging import get_logger

logger = get_logger(__name__)

BackgroundWork = Callable[[FastAPI, asyncio.Event], Coroutine[Any, Any, None]]
RECONNECT_SECONDS = 1.0


def _tracer(app: FastAPI) -> Tracer | None:
    """The app's tracer; None when tracing is off (no OTLP_ENDPOINT)."""
    provider = getattr(app.state, "tracer_provider", None)
    return None if provider is None else provider.get_tracer("terrascale.events")


async def _with_bus(
    app: FastAPI,
    stop: asyncio.Event,
    events: EventSettings,
    work: Callable[[EventBus], Awaitable[None]],
) -> None:
    """Connect to the bus (retrying while it is down), run ``work``, always close the bus."""
    while not stop.is_set():
        try:
            bus = await connect_bus(events, app.state.settings)
        except Exception as exc:  # noqa: BLE001 - any connection failure: wait and retry
            logger.warning("event bus unreachable; retrying", error=repr(exc))
            await wait_event(stop, RECONNECT_SECONDS)
            continue
        try:
            await work(bus)
        finally:
            await bus.close()
        return


def outbox_relay(
    events: EventSettings, *, engines: Callable[[FastAPI], Sequence[AsyncEngine]] | None = None
) -> BackgroundWork:
    """Publish this service's outbox. Every process runs one; an advisory lock makes one of
    them the publisher per database and the others stand by. ``engines`` gives the databases
    whose outboxes to publish (a sharded service has one per shard database); by default the
    service's own."""

    async def run(app: FastAPI, stop: asyncio.Event) -> None:
        async def relay(bus: EventBus) -> None:
            databases = [app.state.engine] if engines is None else engines(app)
            relays = [
                OutboxRelay.from_settings(engine, bus, events, tracer=_tracer(app))
                for engine in databases
            ]
            await asyncio.gather(*(relay.run_until(stop) for relay in relays))

        await _with_bus(app, stop, events, relay)

    return run


def event_consumer(
    events: EventSettings,
    *,
    group: str,
    categories: Sequence[str],
    handler: Callable[[FastAPI], Handler],
) -> BackgroundWork:
    """Consume ``categories`` as a member of ``group``; ``handler`` is built from the app so it
    can use the app's database sessions."""

    async def run(app: FastAPI, stop: asyncio.Event) -> None:
        async def consume(bus: EventBus) -> None:
            runner = ConsumerRunner(
                bus,
                group=group,
                categories=categories,
                handler=handler(app),
                settings=events,
                tracer=_tracer(app),
            )
            await runner.run_until(stop)

        await _with_bus(app, stop, events, consume)

    return run


def run_background(
    app: FastAPI, work: Sequence[BackgroundWork], stop: asyncio.Event
) -> list[asyncio.Task[None]]:
    return [asyncio.create_task(item(app, stop)) for item in work]


async def stop_background(
    tasks: Sequence[asyncio.Task[None]], stop: asyncio.Event, *, grace_seconds: float
) -> None:
    stop.set()
    if not tasks:
        return
    _, pending = await asyncio.wait(tasks, timeout=grace_seconds)
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
