"""Redis Streams transport: partitioned streams, consumer groups, leases, dead letters.

Keys (``P`` is EVENT_KEY_PREFIX):
  ``P events:<category>:<partition>``            a partition's stream (``XADD ... MAXLEN ~``)
  ``P events:<category>:dead``                   the category's dead letters
  ``P events-lease:<group>:<category>:<partition>`` who in a group reads the partition now
  ``P events-members:<group>``                   the group's live consumers

A consumer reads a partition only while it holds the lease (see ``redis_leases``). On taking a
partition over it first claims (``XAUTOCLAIM``) what earlier holders left unacknowledged, once
those entries have been idle for EVENT_CLAIM_IDLE_SECONDS, and reads new entries only when none
are left, so entries of one partition are handled in stream order even across crashes. A failed
entry is retried (``XCLAIM``, which also counts the delivery) before anything after it; past
EVENT_MAX_DELIVERIES it is written to the dead-letter stream and then acknowledged, atomically.
On a graceful release the entries read but not yet handled are marked idle with their delivery
counts restored, so the next holder takes them at once and they are not counted twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import zlib
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, cast

from redis.asyncio import Redis
from redis.exceptions import RedisError, ResponseError

from terrascale.common.events.bus import DeadLetter, Outcome, Processor, Received
from terrascale.common.events.envelope import Envelope
from terrascale.common.events.partitioning import partition_for
from terrascale.common.events.redis_leases import PartitionLeases
from terrascale.common.events.settings import EventSettings
from terrascale.common.events.waiting import raise_if_cancelled, wait_event
from terrascale.common.logging import get_logger

logger = get_logger(__name__)

ENVELOPE = b"envelope"
ERROR_BACKOFF_SECONDS = 0.5

StreamEntries = list[tuple[bytes, dict[bytes, bytes] | None]]


@dataclass(frozen=True, slots=True)
class _Partition:
    category: str
    index: int
    stream: str
    lease: str


@dataclass(slots=True)
class _Entry:
    message_id: bytes
    payload: bytes
    delivery_count: int


class RedisStreamsBus:
    """The bus over one Redis (or Valkey) server (``create_event_redis`` builds a fitting client).

    The client must return bytes, must not retry commands (a read retried after a lost reply
    would leave entries pending unseen, out of order), and its socket timeout must exceed
    EVENT_POLL_SECONDS (reads block that long).
    """

    transport = "redis"

    def __init__(self, redis: Redis, settings: EventSettings) -> None:
        retry = redis.get_retry()
        if retry is not None and retry.get_retries() > 0:
            raise ValueError("the event bus's Redis client must not retry commands (retries=0)")
        self.redis = redis
        self.settings = settings

    def stream_key(self, category: str, partition: int) -> str:
        return f"{self.settings.event_key_prefix}events:{category}:{partition}"

    def dead_key(self, category: str) -> str:
        return f"{self.settings.event_key_prefix}events:{category}:dead"

    def _partition(self, group: str, category: str, index: int) -> _Partition:
        lease = f"{self.settings.event_key_prefix}events-lease:{group}:{category}:{index}"
        return _Partition(category, index, self.stream_key(category, index), lease)

    async def publish(self, envelopes: Sequence[Envelope]) -> None:
        if not envelopes:
            return
        partitions = self.settings.event_partitions
        async with self.redis.pipeline(transaction=False) as pipe:
            for envelope in envelopes:
                key = self.stream_key(
                    envelope.category, partition_for(envelope.subject, partitions)
                )
                pipe.xadd(
                    key,
                    {ENVELOPE: envelope.to_json()},
                    maxlen=self.settings.event_stream_maxlen,
                    approximate=True,
                )
            await pipe.execute()

    async def consume(
        self,
        *,
        group: str,
        consumer: str,
        categories: Sequence[str],
        process: Processor,
        stop: asyncio.Event,
    ) -> None:
        partitions = [
            self._partition(group, category, index)
            for category in categories
            for index in range(self.settings.event_partitions)
        ]
        while True:  # Redis may still be starting with the service: wait for it
            try:
                for partition in partitions:
                    await self.ensure_group(partition.stream, group)
                break
            except RedisError as exc:
                logger.warning("event streams unavailable; retrying", error=repr(exc))
                await wait_event(stop, ERROR_BACKOFF_SECONDS)
                if stop.is_set():
                    return
        leases = PartitionLeases(
            self.redis,
            members_key=f"{self.settings.event_key_prefix}events-members:{group}",
            owner=consumer,
            ttl_seconds=self.settings.event_claim_idle_seconds,
        )
        coordinator = _Coordinator(
            bus=self,
            leases=leases,
            partitions=partitions,
            group=group,
            consumer=consumer,
            process=process,
        )
        await coordinator.run(stop)

    async def ensure_group(self, stream: str, group: str) -> None:
        # From id 0: a group created after events were published still gets them.
        try:
            await self.redis.xgroup_create(stream, group, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    async def backlog(self, *, group: str, categories: Sequence[str]) -> dict[str, int]:
        streams = [
            (category, self.stream_key(category, index))
            for category in categories
            for index in range(self.settings.event_partitions)
        ]
        async with self.redis.pipeline(transaction=False) as pipe:
            for _, stream in streams:
                pipe.xinfo_groups(stream)
            # A stream nobody has published to yet may not exist: it holds nothing.
            replies = await pipe.execute(raise_on_error=False)
        backlog = dict.fromkeys(categories, 0)
        for (category, _), reply in zip(streams, replies, strict=True):
            if isinstance(reply, BaseException):
                continue
            for info in reply:
                if info["name"].decode() == group:
                    # Redis reports no lag when it cannot tell (entries deleted mid-stream).
                    backlog[category] += int(info["pending"]) + int(info["lag"] or 0)
        return backlog

    async def dead_letters(self, category: str, *, limit: int = 100) -> list[DeadLetter]:
        entries = cast(StreamEntries, await self.redis.xrange(self.dead_key(category), count=limit))
        letters: list[DeadLetter] = []
        for _, fields in entries:
            if fields is None:
                continue
            letters.append(
                DeadLetter(
                    payload=fields.get(ENVELOPE, b""),
                    group=fields[b"group"].decode(),
                    reason=fields[b"reason"].decode(),
                    delivery_count=int(fields[b"deliveries"]),
                    stream=fields[b"stream"].decode(),
                    message_id=fields[b"message_id"].decode(),
                    failed_at=datetime.fromisoformat(fields[b"failed_at"].decode()),
                )
            )
        return letters

    async def history(self, category: str, partition: int, *, limit: int = 1000) -> list[bytes]:
        key = self.stream_key(category, partition)
        entries = cast(StreamEntries, await self.redis.xrange(key, count=limit))
        return [fields.get(ENVELOPE, b"") for _, fields in entries if fields is not None]

    async def stream_length(self, category: str, partition: int) -> int:
        return int(await self.redis.xlen(self.stream_key(category, partition)))

    async def close(self) -> None:
        await self.redis.aclose()


class _Coordinator:
    """Keeps this consumer's fair share of leases and one worker per leased partition."""

    def __init__(
        self,
        *,
        bus: RedisStreamsBus,
        leases: PartitionLeases,
        partitions: list[_Partition],
        group: str,
        consumer: str,
        process: Processor,
    ) -> None:
        self.bus = bus
        self.leases = leases
        self.group = group
        self.consumer = consumer
        self.process = process
        self.ttl = bus.settings.event_claim_idle_seconds
        # Each consumer tries partitions from its own starting point, so joiners rarely collide.
        start = zlib.crc32(consumer.encode()) % len(partitions)
        self.partitions = partitions[start:] + partitions[:start]
        self.workers: dict[str, _PartitionWorker] = {}

    async def run(self, stop: asyncio.Event) -> None:
        async with asyncio.TaskGroup() as tasks:
            while True:
                raise_if_cancelled()
                stopping = stop.is_set()
                if stopping:
                    for worker in self.workers.values():
                        worker.release()
                try:
                    # Leases stay renewed while stopping, until each worker has finished.
                    await self._rebalance(tasks, acquire=not stopping)
                except RedisError as exc:
                    logger.warning("event lease renewal failed", error=repr(exc))
                if not stopping:
                    await wait_event(stop, self.ttl / 3)
                    continue
                running = [w.task for w in self.workers.values() if w.task and not w.finished]
                if not running:
                    break
                await asyncio.wait(running, timeout=self.ttl / 3)
        try:
            await self.leases.leave()
        except RedisError as exc:
            logger.warning("could not leave the consumer group", error=repr(exc))

    async def _rebalance(self, tasks: asyncio.TaskGroup, *, acquire: bool) -> None:
        started = time.monotonic()
        live = await self.leases.heartbeat()
        share = self.leases.fair_share(len(self.partitions), live)
        self.workers = {key: w for key, w in self.workers.items() if not w.finished}
        renewed = await self.leases.renew(list(self.workers))
        held: list[str] = []
        for key, worker in self.workers.items():
            if key not in renewed:
                worker.lose()
                continue
            worker.valid_until = started + self.ttl
            if not worker.releasing:
                held.append(key)
        for key in held[share:]:
            self.workers[key].release()
        for partition in self.partitions:
            if not acquire or len(held) >= share:
                break
            if partition.lease in self.workers or not await self.leases.try_acquire(
                partition.lease
            ):
                continue
            worker = _PartitionWorker(
                coordinator=self, partition=partition, valid_until=started + self.ttl
            )
            self.workers[partition.lease] = worker
            held.append(partition.lease)
            worker.task = tasks.create_task(worker.run(), name=f"events {partition.stream}")


@dataclass(eq=False)
class _PartitionWorker:
    """Handles one leased partition, in order, until released, stopped or the lease is lost."""

    coordinator: _Coordinator
    partition: _Partition
    valid_until: float
    releasing: bool = False
    lost: bool = False
    finished: bool = False
    task: asyncio.Task[None] | None = None
    _buffer: deque[_Entry] = field(default_factory=deque[_Entry])
    _retry: _Entry | None = None
    _retry_at: float = 0.0
    _taken_over: bool = False
    _claim_cursor: bytes = b"0-0"
    _reclaim_own: bool = False  # after an error: what we read and did not finish is ours
    _wake: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def _settings(self) -> EventSettings:
        return self.coordinator.bus.settings

    @property
    def _redis(self) -> Redis:
        return self.coordinator.bus.redis

    def release(self) -> None:
        """Finish the entry in hand, hand back the rest and give the lease up."""
        self.releasing = True
        self._wake.set()

    def lose(self) -> None:
        """Someone else holds the lease now: stop touching the partition."""
        self.lost = True
        self._wake.set()

    def _leased(self) -> bool:
        return not self.lost and time.monotonic() < self.valid_until

    async def run(self) -> None:
        try:
            while not self.releasing and self._leased():
                raise_if_cancelled()
                try:
                    entry = await self._next()
                    if entry is None:
                        continue
                    if self.releasing or not self._leased():
                        self._buffer.appendleft(entry)  # not started: handed back below
                        break
                    outcome, reason = await self.coordinator.process(
                        Received(
                            payload=entry.payload,
                            delivery_count=entry.delivery_count,
                            stream=self.partition.stream,
                            message_id=entry.message_id.decode(),
                        )
                    )
                    await self._settle(entry, outcome, reason)
                except RedisError as exc:
                    logger.warning(
                        "event stream read failed", stream=self.partition.stream, error=repr(exc)
                    )
                    if "NOGROUP" in str(exc):  # Redis lost its data: start the group again
                        with contextlib.suppress(RedisError):
                            await self.coordinator.bus.ensure_group(
                                self.partition.stream, self.coordinator.group
                            )
                    self._forget_local_state()
                    await wait_event(self._wake, ERROR_BACKOFF_SECONDS)
            if self.releasing and self._leased():
                await self._hand_back()
                await self.coordinator.leases.release(self.partition.lease)
        except RedisError as exc:
            logger.warning("event lease release failed", error=repr(exc))
        finally:
            self.finished = True

    def _forget_local_state(self) -> None:
        # What we read is still pending under our name; take it over again like a new holder,
        # starting with our own entries, which need not idle: nothing of ours handles them now.
        self._buffer.clear()
        self._retry = None
        self._taken_over = False
        self._claim_cursor = b"0-0"
        self._reclaim_own = True

    async def _next(self) -> _Entry | None:
        if self._retry is not None:
            return await self._redeliver(self._retry)
        if self._buffer:
            return self._buffer.popleft()
        if not self._taken_over:
            await self._take_over()
            return None
        await self._read_new()
        return None

    async def _redeliver(self, entry: _Entry) -> _Entry | None:
        await wait_event(self._wake, self._retry_at - time.monotonic())
        if self.releasing or not self._leased():
            return None
        self._retry = None
        # XCLAIM without JUSTID counts the delivery, so a crash mid-retry still counts.
        claimed = cast(
            StreamEntries,
            await self._redis.xclaim(
                self.partition.stream,
                self.coordinator.group,
                self.coordinator.consumer,
                0,
                [entry.message_id],
            ),
        )
        if not claimed or claimed[0][1] is None:
            logger.error(
                "a failed event was trimmed before it could be retried",
                stream=self.partition.stream,
                message_id=entry.message_id.decode(),
            )
            return None
        return _Entry(entry.message_id, claimed[0][1].get(ENVELOPE, b""), entry.delivery_count + 1)

    async def _take_over(self) -> None:
        """Claim what earlier holders left pending; read new entries only once none is left."""
        settings = self._settings
        stream, group = self.partition.stream, self.coordinator.group
        if self._reclaim_own:
            await self._reclaim_own_entries()
            return
        reply: list[Any] = await self._redis.xautoclaim(
            stream,
            group,
            self.coordinator.consumer,
            min_idle_time=round(settings.event_claim_idle_seconds * 1000),
            start_id=self._claim_cursor,
            count=settings.event_read_count,
        )
        self._claim_cursor = cast(bytes, reply[0])
        claimed = cast(StreamEntries, reply[1])
        if len(reply) > 2 and reply[2]:  # noqa: PLR2004 (Redis 7 adds the deleted ids)
            logger.error(
                "pending events were trimmed before being handled",
                stream=stream,
                count=len(reply[2]),
            )
        if stale := [message_id for message_id, fields in claimed if fields is None]:
            await self._redis.xack(stream, group, *stale)  # deleted entries (Redis 6.2)
        if claimed:
            counts = await self._delivery_counts([message_id for message_id, _ in claimed])
            for message_id, fields in claimed:
                if fields is not None:
                    self._buffer.append(
                        _Entry(message_id, fields.get(ENVELOPE, b""), counts.get(message_id, 1))
                    )
            return
        if self._claim_cursor != b"0-0":
            return
        summary: dict[str, Any] = await self._redis.xpending(stream, group)
        if int(summary["pending"]) == 0:
            self._taken_over = True
            return
        # Entries still within their idle time: the partition waits for them, to keep order.
        await wait_event(
            self._wake, min(settings.event_poll_seconds, settings.event_claim_idle_seconds)
        )

    async def _reclaim_own_entries(self) -> None:
        """Take back, at once and in order, the entries this consumer read before an error cut
        its handling short (a Redis restart, a dropped connection). While we hold the lease
        every pending entry of the partition is ours, so waiting EVENT_CLAIM_IDLE_SECONDS for
        them, as for a dead consumer's, would only stall the partition."""
        stream, group = self.partition.stream, self.coordinator.group
        consumer = self.coordinator.consumer
        count = self._settings.event_read_count
        pending = cast(
            list[dict[str, Any]],
            await self._redis.xpending_range(
                stream, group, min="-", max="+", count=count, consumername=consumer
            ),
        )
        self._reclaim_own = len(pending) == count  # more after these: next time
        if not pending:
            return
        counts = {row["message_id"]: int(row["times_delivered"]) for row in pending}
        # XCLAIM (no JUSTID) counts this delivery, as any redelivery is counted.
        claimed = cast(
            StreamEntries,
            await self._redis.xclaim(stream, group, consumer, 0, list(counts)),
        )
        for message_id, fields in claimed:
            if fields is not None:
                entry = _Entry(message_id, fields.get(ENVELOPE, b""), counts[message_id] + 1)
                self._buffer.append(entry)

    async def _delivery_counts(self, message_ids: list[bytes]) -> dict[bytes, int]:
        pending = cast(
            list[dict[str, Any]],
            await self._redis.xpending_range(
                self.partition.stream,
                self.coordinator.group,
                min=message_ids[0],
                max=message_ids[-1],
                count=len(message_ids),
                consumername=self.coordinator.consumer,
            ),
        )
        return {row["message_id"]: int(row["times_delivered"]) for row in pending}

    async def _read_new(self) -> None:
        settings = self._settings
        reply = cast(
            list[tuple[bytes, StreamEntries]],
            await self._redis.xreadgroup(
                self.coordinator.group,
                self.coordinator.consumer,
                {self.partition.stream: ">"},
                count=settings.event_read_count,
                block=max(1, round(settings.event_poll_seconds * 1000)),
            ),
        )
        for _, entries in reply:
            for message_id, fields in entries:
                if fields is not None:
                    self._buffer.append(_Entry(message_id, fields.get(ENVELOPE, b""), 1))

    async def _settle(self, entry: _Entry, outcome: Outcome, reason: str) -> None:
        stream, group = self.partition.stream, self.coordinator.group
        if outcome is Outcome.ACK:
            await self._redis.xack(stream, group, entry.message_id)
        elif outcome is Outcome.DEAD:
            # One MULTI: the dead letter is stored before, and together with, the ack.
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.xadd(
                    self.coordinator.bus.dead_key(self.partition.category),
                    {
                        ENVELOPE: entry.payload,
                        b"group": group,
                        b"reason": reason,
                        b"deliveries": entry.delivery_count,
                        b"stream": stream,
                        b"message_id": entry.message_id,
                        b"failed_at": datetime.now(UTC).isoformat(),
                    },
                    maxlen=self._settings.event_stream_maxlen,
                    approximate=True,
                )
                pipe.xack(stream, group, entry.message_id)
                await pipe.execute()
        else:
            self._retry = entry
            delay = self._settings.event_retry_delay_seconds * entry.delivery_count
            self._retry_at = time.monotonic() + min(delay, self._settings.event_claim_idle_seconds)

    async def _hand_back(self) -> None:
        """Make unhandled entries claimable at once, with the deliveries they really had."""
        returned = list(self._buffer)
        self._buffer.clear()
        unhandled = [(entry, entry.delivery_count - 1) for entry in returned]
        if self._retry is not None:
            unhandled.insert(0, (self._retry, self._retry.delivery_count))
            self._retry = None
        if not unhandled:
            return
        idle_ms = round(self._settings.event_claim_idle_seconds * 1000)
        async with self._redis.pipeline(transaction=False) as pipe:
            for entry, count in unhandled:
                pipe.xclaim(
                    self.partition.stream,
                    self.coordinator.group,
                    self.coordinator.consumer,
                    0,
                    [entry.message_id],
                    idle=idle_ms,
                    retrycount=count,
                    justid=True,
                )
            await pipe.execute()
