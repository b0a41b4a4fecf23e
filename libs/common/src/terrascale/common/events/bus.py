"""What the outbox relay and the consumer runner need from a transport.

Two implementations: Redis Streams (``redis_streams``) and NATS JetStream (``nats_jetstream``).
Both lay events out the same way: per category a fixed number of partitions, an event's
partition chosen by ``partition_for(subject)``, one consumer group per consuming service, and
one dead-letter stream per category. The transport decides *how* one partition is processed by
one consumer at a time; the runner decides *what* happens to each message.
"""

from __future__ import annotations

import asyncio
import enum
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from terrascale.common.events.envelope import Envelope


class Outcome(enum.Enum):
    ACK = "ack"  # handled (its transaction committed): acknowledge
    RETRY = "retry"  # failed: leave unacknowledged for redelivery, before anything after it
    DEAD = "dead"  # give up: write to the dead-letter stream, then acknowledge


@dataclass(frozen=True, slots=True)
class Received:
    payload: bytes
    delivery_count: int  # 1 on the first delivery, counted by the server across consumers
    stream: str
    message_id: str


@dataclass(frozen=True, slots=True)
class DeadLetter:
    payload: bytes
    group: str
    reason: str
    delivery_count: int
    stream: str
    message_id: str
    failed_at: datetime


Processor = Callable[[Received], Awaitable[tuple[Outcome, str]]]
"""Handles one message; returns the outcome and, for DEAD, the reason recorded with it."""


class EventBus(Protocol):
    transport: str

    async def publish(self, envelopes: Sequence[Envelope]) -> None:
        """Publish in order; returns once the server has stored every one."""
        ...

    async def consume(
        self,
        *,
        group: str,
        consumer: str,
        categories: Sequence[str],
        process: Processor,
        stop: asyncio.Event,
    ) -> None:
        """Feed ``process`` until ``stop`` is set, then finish the message in hand and return."""
        ...

    async def backlog(self, *, group: str, categories: Sequence[str]) -> dict[str, int]:
        """Per category, the events ``group`` has not acknowledged: unread plus in hand."""
        ...

    async def dead_letters(self, category: str, *, limit: int = 100) -> list[DeadLetter]: ...

    async def history(self, category: str, partition: int, *, limit: int = 1000) -> list[bytes]:
        """The envelopes a partition still holds, oldest first (for inspection and replay)."""
        ...

    async def stream_length(self, category: str, partition: int) -> int: ...

    async def close(self) -> None: ...
