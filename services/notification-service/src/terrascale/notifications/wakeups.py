"""Waking live streams across processes: the worker PUBLISHes on a recipient's Redis channel
after committing new notifications, and every HTTP process keeps ONE pattern subscription that
hands each wake-up to the streams of that recipient open in the process.

A wake-up carries no notification, only "look again": streams read PostgreSQL, so a wake-up that
is lost, late or doubled costs a query at most, never a missed or repeated notification. While
the subscription is down, streams poll instead (``connected`` tells them which).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Generator, Sequence
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from terrascale.common.events.waiting import raise_if_cancelled, wait_event
from terrascale.common.logging import get_logger
from terrascale.common.settings import ServiceSettings

logger = get_logger(__name__)

CHANNEL_INFIX = "stream:"
RECONNECT_SECONDS = 1.0
# How long a pubsub read blocks before the loop looks at its stop flag again.
READ_BLOCK_SECONDS = 1.0
# Plain commands (PSUBSCRIBE) on the subscription's connection; reads have their own timeout.
COMMAND_TIMEOUT_SECONDS = 5.0
_GLOB_SPECIAL = "\\*?[]"


def channel_for(key_prefix: str, recipient_id: int) -> str:
    return f"{key_prefix}{CHANNEL_INFIX}{recipient_id}"


def channel_pattern(key_prefix: str) -> str:
    """The PSUBSCRIBE pattern of every recipient's channel; a prefix is matched literally."""
    escaped = "".join(f"\\{char}" if char in _GLOB_SPECIAL else char for char in key_prefix)
    return f"{escaped}{CHANNEL_INFIX}*"


def create_subscription_redis(settings: ServiceSettings) -> Redis:
    """A client of its own: the cache's short socket timeout would cut a blocking read short,
    and its circuit breaker has nothing to do with a long-lived subscription."""
    password = settings.redis_password.get_secret_value() if settings.redis_password else None
    return Redis(
        host=settings.redis_host,
        port=settings.redis_port,
        db=settings.redis_db,
        password=password,
        socket_timeout=COMMAND_TIMEOUT_SECONDS,
        socket_connect_timeout=settings.redis_timeout_seconds,
        retry=Retry(NoBackoff(), retries=0),  # the hub reconnects on its own schedule
        health_check_interval=30,
    )


class WakeUpPublisher:
    """The worker's side: one PUBLISH per recipient that got new notifications."""

    def __init__(self, redis: Redis, *, key_prefix: str) -> None:
        self.redis = redis
        self.key_prefix = key_prefix

    async def announce(self, created: Sequence[tuple[int, int]]) -> None:
        """``created`` holds (recipient id, seq) pairs. A failure is logged, not raised: the
        notifications are committed, and streams find them by polling at the latest."""
        if not created:
            return
        try:
            async with self.redis.pipeline(transaction=False) as pipeline:
                for recipient_id, seq in created:
                    pipeline.publish(channel_for(self.key_prefix, recipient_id), str(seq))
                await pipeline.execute()
        except RedisError as exc:
            logger.warning("stream wake-up not published", error=repr(exc), count=len(created))


class Subscription:
    """One open stream's mailbox. Wake-ups coalesce: one pending is as good as many, since
    the stream reads everything new when it wakes."""

    def __init__(self) -> None:
        self._pending: asyncio.Queue[None] = asyncio.Queue(maxsize=1)

    def wake(self) -> None:
        with contextlib.suppress(asyncio.QueueFull):
            self._pending.put_nowait(None)

    async def wait(self, seconds: float) -> None:
        """Return on a wake-up or after ``seconds``, whichever comes first."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self._pending.get()


class WakeUpHub:
    """The HTTP process's side: one pattern subscription, dispatched to per-stream mailboxes."""

    def __init__(self, redis: Redis, *, key_prefix: str) -> None:
        self.redis = redis
        self.key_prefix = key_prefix
        self.connected = False
        self._subscribers: dict[int, set[Subscription]] = {}

    @contextlib.contextmanager
    def subscribe(self, recipient_id: int) -> Generator[Subscription]:
        subscription = Subscription()
        self._subscribers.setdefault(recipient_id, set()).add(subscription)
        try:
            yield subscription
        finally:
            mailboxes = self._subscribers[recipient_id]
            mailboxes.discard(subscription)
            if not mailboxes:
                del self._subscribers[recipient_id]

    @property
    def open_streams(self) -> int:
        return sum(len(mailboxes) for mailboxes in self._subscribers.values())

    async def run(self, stop: asyncio.Event) -> None:
        """Stay subscribed until ``stop``, reconnecting after any Redis failure."""
        failing = False
        while not stop.is_set():
            try:
                async with self.redis.pubsub() as pubsub:
                    await pubsub.psubscribe(channel_pattern(self.key_prefix))
                    self._set_connected(True)
                    if failing:
                        logger.info("stream wake-ups restored")
                        failing = False
                    while not stop.is_set():
                        message = await pubsub.get_message(
                            ignore_subscribe_messages=True, timeout=READ_BLOCK_SECONDS
                        )
                        # redis-py reads under asyncio.wait_for, which can swallow a cancel.
                        raise_if_cancelled()
                        if message is not None:
                            self._dispatch(message)
            except (RedisError, OSError) as exc:
                self._set_connected(False)
                if not failing:
                    logger.warning(
                        "stream wake-ups unavailable; streams poll the database",
                        error=repr(exc),
                    )
                    failing = True
                await wait_event(stop, RECONNECT_SECONDS)
        self._set_connected(False)

    def _set_connected(self, connected: bool) -> None:
        """Every stream re-reads when the channel comes or goes: a publish may have been missed
        while it was down, and each stream must switch between waiting and polling."""
        if connected != self.connected:
            self.connected = connected
            for mailboxes in self._subscribers.values():
                for subscription in mailboxes:
                    subscription.wake()

    def _dispatch(self, message: dict[str, Any]) -> None:
        channel = message.get("channel")
        if isinstance(channel, bytes):
            channel = channel.decode("utf-8", "replace")
        suffix = str(channel).removeprefix(f"{self.key_prefix}{CHANNEL_INFIX}")
        if not suffix.isdecimal():
            return
        for subscription in self._subscribers.get(int(suffix), ()):
            subscription.wake()
