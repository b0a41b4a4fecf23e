"""The consumer runner's decisions, one message at a time (no consumer loop needed)."""

from __future__ import annotations

import asyncio

from sqlalchemy import text
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine

from terrascale.common.events import (
    ConsumerRunner,
    Envelope,
    EventSettings,
    Outcome,
    Received,
    RedisStreamsBus,
)

from .harness import user_event


async def test_entry_past_the_delivery_limit_is_dead_lettered_without_running(
    redis_bus: RedisStreamsBus, event_settings: EventSettings
) -> None:
    calls: list[Envelope] = []

    async def handle(envelope: Envelope) -> None:
        calls.append(envelope)

    runner = ConsumerRunner(
        redis_bus, group="g", categories=["user"], handler=handle, settings=event_settings
    )
    payload = user_event(1, 0).to_json()
    limit = event_settings.event_max_deliveries
    outcome, reason = await runner.process(Received(payload, limit + 1, "stream", "1-0"))
    assert outcome is Outcome.DEAD
    assert f"limit {limit}" in reason
    assert await runner.process(Received(payload, limit, "stream", "1-1")) == (Outcome.ACK, "")
    assert len(calls) == 1
    assert runner.consumer  # a unique default name


async def test_an_outage_is_waited_out_without_counting_a_delivery(
    redis_bus: RedisStreamsBus, event_settings: EventSettings
) -> None:
    attempts = 0

    async def handle(envelope: Envelope) -> None:
        nonlocal attempts
        attempts += 1
        if attempts == 1:
            raise ConnectionRefusedError("database restarting")
        if attempts <= 3:
            raise OperationalError("SELECT 1", {}, ConnectionResetError())

    runner = ConsumerRunner(
        redis_bus, group="g", categories=["user"], handler=handle, settings=event_settings
    )
    last_delivery = event_settings.event_max_deliveries
    payload = user_event(1, 0).to_json()
    assert await runner.process(Received(payload, last_delivery, "stream", "1-0")) == (
        Outcome.ACK,
        "",
    )
    assert attempts == 4


async def test_stopping_during_an_outage_leaves_the_message_for_later(
    redis_bus: RedisStreamsBus, event_settings: EventSettings
) -> None:
    async def handle(_envelope: Envelope) -> None:
        raise ConnectionRefusedError("database down")

    runner = ConsumerRunner(
        redis_bus, group="g", categories=["user"], handler=handle, settings=event_settings
    )
    stop = asyncio.Event()
    runner._stop = stop  # what run_until sets
    payload = user_event(1, 0).to_json()
    last_delivery = event_settings.event_max_deliveries
    processing = asyncio.create_task(
        runner.process(Received(payload, last_delivery, "stream", "1-0"))
    )
    await asyncio.sleep(0.05)
    assert not processing.done()
    stop.set()
    outcome, reason = await processing
    assert outcome is Outcome.RETRY  # not dead, even on the last delivery
    assert "database down" in reason


async def test_a_statement_the_busy_database_cancelled_is_waited_out(
    redis_bus: RedisStreamsBus, event_settings: EventSettings, engine: AsyncEngine
) -> None:
    """PostgreSQL cancelling a statement (statement_timeout) means "too busy now": retried in
    place like an outage, not counted towards the dead-letter limit."""
    attempts = 0

    async def handle(envelope: Envelope) -> None:
        nonlocal attempts
        attempts += 1
        if attempts == 1:
            async with engine.connect() as connection:
                await connection.execute(text("SET statement_timeout = '20ms'"))
                await connection.execute(text("SELECT pg_sleep(1)"))

    runner = ConsumerRunner(
        redis_bus, group="g", categories=["user"], handler=handle, settings=event_settings
    )
    payload = user_event(1, 0).to_json()
    last_delivery = event_settings.event_max_deliveries
    assert await runner.process(Received(payload, last_delivery, "stream", "1-0")) == (
        Outcome.ACK,
        "",
    )
    assert attempts == 2
