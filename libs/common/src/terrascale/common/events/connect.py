"""Builds the bus EVENT_BUS names, from the event settings and the service's Redis settings."""

from __future__ import annotations

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from terrascale.common.events.bus import EventBus
from terrascale.common.events.nats_jetstream import NatsJetStreamBus
from terrascale.common.events.redis_streams import RedisStreamsBus
from terrascale.common.events.settings import EventSettings
from terrascale.common.settings import ServiceSettings

BLOCKING_READ_MARGIN_SECONDS = 5.0


def create_event_redis(service: ServiceSettings, events: EventSettings) -> Redis:
    """A client of its own: the cache's 0.25 s socket timeout would cut blocking reads short."""
    password = service.redis_password.get_secret_value() if service.redis_password else None
    return Redis(
        host=service.redis_host,
        port=service.redis_port,
        db=service.redis_db,
        password=password,
        socket_timeout=events.event_poll_seconds + BLOCKING_READ_MARGIN_SECONDS,
        socket_connect_timeout=service.redis_timeout_seconds,
        retry=Retry(NoBackoff(), retries=0),  # the relay and the workers retry on their own
        health_check_interval=30,
    )


async def connect_bus(events: EventSettings, service: ServiceSettings) -> EventBus:
    if events.event_bus == "nats":
        return await NatsJetStreamBus.connect(events)
    return RedisStreamsBus(create_event_redis(service, events), events)
