"""Helpers of the event tests: a demo consumer that records what it applies, running
consumers that can be stopped or killed, and polling until something is true."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Tracer
from sqlalchemy import BigInteger, Integer, Text, Uuid, column, insert, select, table
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from terrascale.common.events import (
    ConsumerRunner,
    Envelope,
    EventBus,
    EventSettings,
    Handler,
    UserUpdated,
    idempotent_handler,
    record_event,
)

demo_applied = table(
    "demo_applied",
    column("seq", BigInteger),
    column("consumer_group", Text),
    column("event_id", Uuid),
    column("subject", Text),
    column("position", Integer),
)


def new_subject() -> int:
    """A subject no other test uses."""
    return uuid.uuid4().int % 10**15 + 1


def recording_tracer() -> tuple[Tracer, InMemorySpanExporter]:
    """A tracer whose finished spans the exporter holds for the test to read."""
    provider = TracerProvider()
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider.get_tracer("test"), exporter


def user_event(user_id: int, position: int) -> Envelope:
    """An event of subject ``user_id`` whose place in its subject's sequence is ``position``."""
    data = UserUpdated(user_id=user_id, display_name=None, bio=str(position))
    return Envelope.wrap(data, source="test")


def position_of(envelope: Envelope) -> int:
    return int(str(envelope.data["bio"]))


@dataclass(frozen=True, slots=True)
class Applied:
    event_id: uuid.UUID
    subject: str
    position: int


@dataclass
class DemoConsumer:
    """Applies each event once per group (inbox) and appends it to demo_applied."""

    session_factory: async_sessionmaker[AsyncSession]
    group: str = field(default_factory=lambda: f"demo-{uuid.uuid4().hex[:8]}")
    calls: Counter[uuid.UUID] = field(default_factory=Counter[uuid.UUID])

    def handler(self) -> Handler:
        async def apply(session: AsyncSession, envelope: Envelope) -> None:
            await session.execute(
                insert(demo_applied).values(
                    consumer_group=self.group,
                    event_id=envelope.id,
                    subject=envelope.subject,
                    position=position_of(envelope),
                )
            )

        inner = idempotent_handler(self.session_factory, group=self.group, apply=apply)

        async def handle(envelope: Envelope) -> None:
            self.calls[envelope.id] += 1
            await inner(envelope)

        return handle

    async def applied(self) -> list[Applied]:
        async with self.session_factory() as session:
            rows = await session.execute(
                select(demo_applied.c.event_id, demo_applied.c.subject, demo_applied.c.position)
                .where(demo_applied.c.consumer_group == self.group)
                .order_by(demo_applied.c.seq)
            )
            return [Applied(row.event_id, row.subject, row.position) for row in rows]


async def record_all(
    session_factory: async_sessionmaker[AsyncSession], envelopes: Sequence[Envelope]
) -> None:
    async with session_factory() as session, session.begin():
        for envelope in envelopes:
            await record_event(session, envelope)


@dataclass
class RunningConsumer:
    runner: ConsumerRunner
    stop: asyncio.Event
    task: asyncio.Task[None]

    async def stop_gracefully(self, within: float = 10) -> None:
        self.stop.set()
        async with asyncio.timeout(within):
            await self.task

    async def kill(self) -> None:
        """A crash: nothing in hand is acknowledged, no lease is given back."""
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task


@dataclass
class Consumers:
    bus: EventBus
    settings: EventSettings
    started: list[RunningConsumer] = field(default_factory=list[RunningConsumer])

    def start(
        self,
        *,
        group: str,
        handler: Handler,
        categories: Sequence[str] = ("user",),
        consumer: str | None = None,
        tracer: Tracer | None = None,
    ) -> RunningConsumer:
        runner = ConsumerRunner(
            self.bus,
            group=group,
            categories=categories,
            handler=handler,
            settings=self.settings,
            consumer=consumer,
            tracer=tracer,
        )
        stop = asyncio.Event()
        running = RunningConsumer(runner, stop, asyncio.create_task(runner.run_until(stop)))
        self.started.append(running)
        return running

    async def close(self) -> None:
        for running in self.started:
            if not running.task.done():
                await running.kill()
            elif not running.task.cancelled():
                running.task.result()  # surface a consumer that crashed on its own


async def wait_until(
    condition: Callable[[], Awaitable[bool]], *, within: float = 10, what: str = "condition"
) -> float:
    """Poll ``condition``; returns the seconds it took, fails the test after ``within``."""
    started = time.monotonic()
    while not await condition():
        if time.monotonic() - started > within:
            raise AssertionError(f"timed out after {within} s waiting for {what}")
        await asyncio.sleep(0.02)
    return time.monotonic() - started
