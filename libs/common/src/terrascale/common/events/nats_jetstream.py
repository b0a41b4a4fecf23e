"""NATS JetStream transport: the same partitioned layout, for users who outgrow one Redis.

Names (``P`` is EVENT_KEY_PREFIX with ``:`` read as ``.`` in subjects and ``_`` in names):
  stream ``P events_<category>`` holding subjects ``P events.<category>.<partition>``
  stream ``P events_<category>_dead`` holding subject ``P events.<category>.dead``
  durable pull consumer ``<group>_<category>_<partition>`` per group and partition

Each partition has its own durable consumer with ``max_ack_pending=1``: the server hands out the
next message of a partition only after the previous one is acknowledged, whichever of the
group's processes fetches it, which is the per-partition order the Redis leases give. The ack
wait is EVENT_CLAIM_IDLE_SECONDS (a handler still working says so with ``in_progress``);
``max_msgs_per_subject`` is EVENT_STREAM_MAXLEN; ``Nats-Msg-Id`` lets the server drop a relay's
duplicate publish within its two-minute window. Dead-lettering is ours, as on Redis: the server's
own ``max_deliver`` would drop the message without keeping it.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import Sequence
from datetime import UTC, datetime

import nats
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.errors import Error as NatsError
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js.api import (
    AckPolicy,
    ConsumerConfig,
    DeliverPolicy,
    RetentionPolicy,
    StorageType,
    StreamConfig,
)
from nats.js.client import JetStreamContext
from nats.js.errors import BadRequestError, NotFoundError

from terrascale.common.events.bus import DeadLetter, Outcome, Processor, Received
from terrascale.common.events.envelope import Envelope
from terrascale.common.events.partitioning import partition_for
from terrascale.common.events.settings import EventSettings
from terrascale.common.events.waiting import raise_if_cancelled, wait_event
from terrascale.common.logging import get_logger

logger = get_logger(__name__)

STREAM_NAME_IN_USE = 10058  # JetStream's error code: same name, other configuration
DUPLICATE_WINDOW_SECONDS = 120.0
ERROR_BACKOFF_SECONDS = 0.5


def _name_part(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]", "_", text)


class NatsJetStreamBus:
    transport = "nats"

    def __init__(self, client: Client, settings: EventSettings) -> None:
        self.client = client
        self.js = client.jetstream()
        self.settings = settings
        prefix = settings.event_key_prefix
        self._subject_prefix = ".".join(token for token in prefix.split(":") if token)
        self._subject_prefix += "." if self._subject_prefix else ""
        self._name_prefix = _name_part(prefix)
        self._ensured: set[str] = set()

    @classmethod
    async def connect(cls, settings: EventSettings) -> NatsJetStreamBus:
        client = await nats.connect(settings.nats_url, name="terrascale-events")
        return cls(client, settings)

    def subject(self, category: str, partition: int) -> str:
        return f"{self._subject_prefix}events.{category}.{partition}"

    def dead_subject(self, category: str) -> str:
        return f"{self._subject_prefix}events.{category}.dead"

    def stream_name(self, category: str) -> str:
        return f"{self._name_prefix}events_{_name_part(category)}"

    def dead_stream_name(self, category: str) -> str:
        return self.stream_name(category) + "_dead"

    def durable_name(self, group: str, category: str, partition: int) -> str:
        """The group's pull consumer of one partition."""
        return _name_part(f"{group}_{category}_{partition}")

    async def ensure_streams(self, categories: Sequence[str]) -> None:
        """Create (or bring up to date) each category's streams; cheap after the first call."""
        for category in categories:
            if category in self._ensured:
                continue
            partitions = range(self.settings.event_partitions)
            await self._put_stream(
                StreamConfig(
                    name=self.stream_name(category),
                    subjects=[self.subject(category, index) for index in partitions],
                    retention=RetentionPolicy.LIMITS,
                    storage=StorageType.FILE,
                    max_msgs_per_subject=self.settings.event_stream_maxlen,
                    duplicate_window=DUPLICATE_WINDOW_SECONDS,
                )
            )
            await self._put_stream(
                StreamConfig(
                    name=self.dead_stream_name(category),
                    subjects=[self.dead_subject(category)],
                    retention=RetentionPolicy.LIMITS,
                    storage=StorageType.FILE,
                    max_msgs=self.settings.event_stream_maxlen,
                )
            )
            self._ensured.add(category)

    async def _put_stream(self, config: StreamConfig) -> None:
        try:
            await self.js.add_stream(config)
        except BadRequestError as exc:
            if exc.err_code != STREAM_NAME_IN_USE:
                raise
            await self.js.update_stream(config)

    async def delete_streams(self, categories: Sequence[str]) -> None:
        """Remove the categories' streams and consumers (tests and teardown)."""
        for category in categories:
            for name in (self.stream_name(category), self.dead_stream_name(category)):
                with contextlib.suppress(NotFoundError):
                    await self.js.delete_stream(name)
            self._ensured.discard(category)

    async def publish(self, envelopes: Sequence[Envelope]) -> None:
        if not envelopes:
            return
        await self.ensure_streams(sorted({envelope.category for envelope in envelopes}))
        partitions = self.settings.event_partitions
        # Sent in order on one connection, acknowledged together.
        acks = [
            await self.js.publish_async(
                self.subject(envelope.category, partition_for(envelope.subject, partitions)),
                envelope.to_json(),
                headers={"Nats-Msg-Id": str(envelope.id)},
            )
            for envelope in envelopes
        ]
        await asyncio.gather(*acks)

    async def consume(
        self,
        *,
        group: str,
        consumer: str,
        categories: Sequence[str],
        process: Processor,
        stop: asyncio.Event,
    ) -> None:
        while True:  # JetStream may still be starting with the service: wait for it
            try:
                subscriptions = await self._subscribe(group, categories)
                break
            except NatsError as exc:
                logger.warning("event streams unavailable; retrying", error=repr(exc))
                await wait_event(stop, ERROR_BACKOFF_SECONDS)
                if stop.is_set():
                    return
        async with asyncio.TaskGroup() as tasks:
            for name, category, subscription in subscriptions:
                tasks.create_task(
                    self._pull(
                        subscription, category=category, group=group, process=process, stop=stop
                    ),
                    name=f"events {name}",
                )

    async def _subscribe(
        self, group: str, categories: Sequence[str]
    ) -> list[tuple[str, str, JetStreamContext.PullSubscription]]:
        """One durable pull consumer per partition, each with one message in flight at most."""
        await self.ensure_streams(categories)
        ack_wait = self.settings.event_claim_idle_seconds
        subscriptions: list[tuple[str, str, JetStreamContext.PullSubscription]] = []
        for category in categories:
            for index in range(self.settings.event_partitions):
                subject = self.subject(category, index)
                subscription = await self.js.pull_subscribe(
                    subject,
                    durable=self.durable_name(group, category, index),
                    stream=self.stream_name(category),
                    config=ConsumerConfig(
                        ack_policy=AckPolicy.EXPLICIT,
                        deliver_policy=DeliverPolicy.ALL,
                        max_ack_pending=1,
                        ack_wait=ack_wait,
                        max_deliver=-1,
                        filter_subject=subject,
                    ),
                )
                subscriptions.append((subject, category, subscription))
        return subscriptions

    async def _pull(
        self,
        subscription: JetStreamContext.PullSubscription,
        *,
        category: str,
        group: str,
        process: Processor,
        stop: asyncio.Event,
    ) -> None:
        try:
            while not stop.is_set():
                raise_if_cancelled()  # nats-py's fetch waits with asyncio.wait_for
                try:
                    messages = await subscription.fetch(1, timeout=self.settings.event_poll_seconds)
                except NatsTimeoutError:
                    continue
                except NatsError as exc:
                    logger.warning("event fetch failed", error=repr(exc))
                    await asyncio.sleep(ERROR_BACKOFF_SECONDS)
                    continue
                for message in messages:
                    await self._handle(message, category=category, group=group, process=process)
        finally:
            with contextlib.suppress(NatsError):
                await subscription.unsubscribe()

    async def _handle(self, message: Msg, *, category: str, group: str, process: Processor) -> None:
        metadata = message.metadata
        received = Received(
            payload=message.data,
            delivery_count=metadata.num_delivered,
            stream=message.subject,
            message_id=str(metadata.sequence.stream),
        )
        keeper = asyncio.create_task(self._keep_in_progress(message))
        try:
            outcome, reason = await process(received)
        finally:
            keeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await keeper
        try:
            if outcome is Outcome.ACK:
                await message.ack()
            elif outcome is Outcome.DEAD:
                await self.js.publish(
                    self.dead_subject(category),
                    message.data,
                    headers={
                        "group": group,
                        "reason": reason,
                        "deliveries": str(received.delivery_count),
                        "stream": received.stream,
                        "message_id": received.message_id,
                        "failed_at": datetime.now(UTC).isoformat(),
                    },
                )
                await message.ack()
            else:
                delay = self.settings.event_retry_delay_seconds * received.delivery_count
                await message.nak(delay=min(delay, self.settings.event_claim_idle_seconds))
        except NatsError as exc:
            # Unacknowledged: the server redelivers after the ack wait.
            logger.warning("event settle failed", error=repr(exc), outcome=outcome.value)

    async def _keep_in_progress(self, message: Msg) -> None:
        interval = self.settings.event_claim_idle_seconds / 3
        while True:
            await asyncio.sleep(interval)
            with contextlib.suppress(NatsError):
                await message.in_progress()

    async def _read_all(self, stream: str, subject: str, limit: int) -> list[Msg]:
        total = await self._count(stream, subject)
        if total == 0:
            return []
        subscription = await self.js.pull_subscribe(
            subject,
            stream=stream,
            config=ConsumerConfig(
                ack_policy=AckPolicy.NONE,
                deliver_policy=DeliverPolicy.ALL,
                inactive_threshold=5.0,
            ),
        )
        messages: list[Msg] = []
        try:
            while len(messages) < min(total, limit):
                try:
                    messages += await subscription.fetch(
                        min(total, limit) - len(messages), timeout=1.0
                    )
                except NatsTimeoutError:
                    break
        finally:
            await subscription.unsubscribe()
        return messages

    async def _count(self, stream: str, subject: str) -> int:
        try:
            info = await self.js.stream_info(stream, subjects_filter=subject)
        except NotFoundError:
            return 0
        return (info.state.subjects or {}).get(subject, 0)

    async def backlog(self, *, group: str, categories: Sequence[str]) -> dict[str, int]:
        backlog = dict.fromkeys(categories, 0)
        for category in categories:
            for index in range(self.settings.event_partitions):
                try:
                    info = await self.js.consumer_info(
                        self.stream_name(category), self.durable_name(group, category, index)
                    )
                except NotFoundError:
                    continue  # not subscribed yet: nothing to count
                backlog[category] += (info.num_pending or 0) + (info.num_ack_pending or 0)
        return backlog

    async def dead_letters(self, category: str, *, limit: int = 100) -> list[DeadLetter]:
        messages = await self._read_all(
            self.dead_stream_name(category), self.dead_subject(category), limit
        )
        letters: list[DeadLetter] = []
        for message in messages:
            headers = message.headers or {}
            letters.append(
                DeadLetter(
                    payload=message.data,
                    group=headers.get("group", ""),
                    reason=headers.get("reason", ""),
                    delivery_count=int(headers.get("deliveries", "0")),
                    stream=headers.get("stream", ""),
                    message_id=headers.get("message_id", ""),
                    failed_at=datetime.fromisoformat(headers["failed_at"]),
                )
            )
        return letters

    async def history(self, category: str, partition: int, *, limit: int = 1000) -> list[bytes]:
        subject = self.subject(category, partition)
        messages = await self._read_all(self.stream_name(category), subject, limit)
        return [message.data for message in messages]

    async def stream_length(self, category: str, partition: int) -> int:
        return await self._count(self.stream_name(category), self.subject(category, partition))

    async def close(self) -> None:
        await self.client.close()
