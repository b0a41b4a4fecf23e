"""The replicator: copies the events produced in one region into another region's event bus.

It is one more consumer group (``replicator-<target>``) on the source region's streams, so it
inherits what every consumer has: a position that survives restarts, redelivery of what it had
in hand when it died, and per-subject order. It forwards only events produced in the source
region (``replicated_from`` unset): an event it copied in from elsewhere is that region's to
forward, so nothing travels back. The copy keeps the event's id, so the target's inboxes drop a
redelivered copy; it gains ``replicated_from``, so the target's services know it is a replica to
store, not a change of their own. While the target is unreachable the replicator holds the event
and retries, so the source's stream keeps everything after it until the target returns.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from prometheus_client import Histogram
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from terrascale.common.events import ConsumerRunner, Envelope, EventSettings
from terrascale.common.events.bus import EventBus
from terrascale.common.events.connect import BLOCKING_READ_MARGIN_SECONDS
from terrascale.common.events.redis_streams import RedisStreamsBus
from terrascale.common.events.waiting import wait_event
from terrascale.common.logging import get_logger

logger = get_logger(__name__)

# Every category a service produces; each carries state another region keeps a replica of.
REPLICATED_CATEGORIES: tuple[str, ...] = ("user", "follow", "post")
TARGET_RETRY_SECONDS = 0.5

REPLICATION_LAG = Histogram(
    "terrascale_replication_lag_seconds",
    "From an event's creation in its home region to its copy stored in the other region's bus.",
    ["source", "target"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
)


@dataclass(frozen=True, slots=True)
class RegionBus:
    """Where a region's events live: its Redis and its event settings (key prefix included)."""

    name: str
    redis_url: str
    events: EventSettings

    def connect(self) -> RedisStreamsBus:
        redis = Redis.from_url(
            self.redis_url,
            socket_timeout=self.events.event_poll_seconds + BLOCKING_READ_MARGIN_SECONDS,
            socket_connect_timeout=1.0,
            retry=Retry(NoBackoff(), retries=0),  # the bus and the replicator retry on their own
        )
        return RedisStreamsBus(redis, self.events)


class Replicator:
    def __init__(
        self,
        *,
        source: RegionBus,
        target: RegionBus,
        categories: Sequence[str] = REPLICATED_CATEGORIES,
    ) -> None:
        self.source = source
        self.target = target
        self.categories = tuple(categories)
        self.group = f"replicator-{target.name}"
        self._stop = asyncio.Event()
        self._target_bus: EventBus | None = None

    async def run_until(self, stop: asyncio.Event) -> None:
        """Forward events until ``stop`` is set (the event in hand is finished first)."""
        self._stop = stop
        source_bus = self.source.connect()
        self._target_bus = self.target.connect()
        logger.info(
            "replicator started", source=self.source.name, target=self.target.name, group=self.group
        )
        try:
            runner = ConsumerRunner(
                source_bus,
                group=self.group,
                categories=self.categories,
                handler=self.forward,
                settings=self.source.events,
            )
            await runner.run_until(stop)
        finally:
            await source_bus.close()
            await self._target_bus.close()
        logger.info("replicator stopped", source=self.source.name, target=self.target.name)

    async def forward(self, envelope: Envelope) -> None:
        if envelope.replicated_from is not None:
            return  # copied in from another region: not ours to send on
        assert self._target_bus is not None  # noqa: S101 - run_until sets it before consuming
        copy = envelope.model_copy(update={"replicated_from": self.source.name})
        while True:
            try:
                await self._target_bus.publish([copy])
                break
            except (RedisError, OSError) as exc:
                if self._stop.is_set():
                    raise  # unacknowledged: the next run sends it
                logger.warning(
                    "target region unreachable; holding the event",
                    target=self.target.name,
                    event_id=str(envelope.id),
                    error=repr(exc),
                )
                await wait_event(self._stop, TARGET_RETRY_SECONDS)
        lag = (datetime.now(UTC) - envelope.time).total_seconds()
        REPLICATION_LAG.labels(self.source.name, self.target.name).observe(max(0.0, lag))
