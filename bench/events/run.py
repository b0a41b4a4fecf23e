"""Event backbone throughput on this machine: the outbox relay and one consumer.

    uv run python bench/events/run.py                  # Redis Streams, then NATS if reachable
    uv run python bench/events/run.py --transport redis --events 20000 --runs 3

For each transport and run: write N events to a fresh outbox (not timed), time the relay
publishing all of them, then time one consumer process handling them twice over, in two groups:
with a no-op handler (transport and runner cost) and with the inbox handler (one PostgreSQL
transaction per event, as real consumers do). Prints each run and the median of the runs.

Servers (environment): BENCH_DATABASE_URL (admin URL, default
postgresql://postgres@127.0.0.1:5432/postgres), BENCH_REDIS_URL (redis://127.0.0.1:6379/0),
BENCH_NATS_URL (nats://127.0.0.1:4222). It creates a database, Redis keys and NATS streams of its
own and removes them on exit.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from sqlalchemy import MetaData, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.pool import NullPool

from terrascale.common.db import NAMING_CONVENTION
from terrascale.common.events import (
    CATEGORIES,
    ConsumerRunner,
    Envelope,
    EventBus,
    EventSettings,
    NatsJetStreamBus,
    OutboxRelay,
    RedisStreamsBus,
    UserUpdated,
    define_outbox_tables,
    idempotent_handler,
    record_event,
)
from terrascale.common.logging import configure_logging

Handler = Callable[[Envelope], Awaitable[None]]


@dataclass
class Figures:
    relay: float
    consume_noop: float
    consume_inbox: float


async def admin(url: URL, statement: str) -> None:
    engine = create_async_engine(url, poolclass=NullPool, isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as connection:
            await connection.execute(text(statement))
    finally:
        await engine.dispose()


async def open_bus(transport: str, settings: EventSettings) -> EventBus:
    if transport == "nats":
        return await NatsJetStreamBus.connect(settings)
    redis_url = make_url(os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0"))
    client = Redis(
        host=redis_url.host or "127.0.0.1",
        port=redis_url.port or 6379,
        db=int(redis_url.database or 0),
        socket_timeout=10,
        retry=Retry(NoBackoff(), retries=0),
    )
    return RedisStreamsBus(client, settings)


async def clean(bus: EventBus, prefix: str) -> None:
    if isinstance(bus, NatsJetStreamBus):
        await bus.delete_streams(CATEGORIES)
    elif isinstance(bus, RedisStreamsBus):
        keys = [key async for key in bus.redis.scan_iter(match=f"{prefix}*", count=1000)]
        if keys:
            await bus.redis.delete(*keys)


async def fill_outbox(engine: AsyncEngine, count: int) -> None:
    factory = async_sessionmaker(engine, expire_on_commit=False)
    subjects = 1000
    for start in range(0, count, 1000):
        async with factory() as session, session.begin():
            for n in range(start, min(start + 1000, count)):
                data = UserUpdated(user_id=n % subjects + 1, display_name=None, bio=str(n))
                await record_event(session, Envelope.wrap(data, source="bench"))


async def time_consumer(
    bus: EventBus, settings: EventSettings, handler: Handler, count: int
) -> float:
    done = asyncio.Event()
    handled = 0

    async def counting(envelope: Envelope) -> None:
        nonlocal handled
        await handler(envelope)
        handled += 1
        if handled >= count:
            done.set()

    group = f"bench-{uuid.uuid4().hex[:8]}"
    runner = ConsumerRunner(
        bus, group=group, categories=["user"], handler=counting, settings=settings
    )
    stop = asyncio.Event()
    started = time.perf_counter()
    task = asyncio.create_task(runner.run_until(stop))
    await done.wait()
    elapsed = time.perf_counter() - started
    stop.set()
    await task
    return count / elapsed


async def one_run(transport: str, admin_url: URL, count: int) -> Figures:
    prefix = f"bench:{uuid.uuid4().hex[:8]}:"
    settings = EventSettings(
        _env_file=None,  # pyright: ignore[reportCallIssue]
        event_key_prefix=prefix,
        nats_url=os.environ.get("BENCH_NATS_URL", "nats://127.0.0.1:4222"),
    )
    database = f"bench_events_{uuid.uuid4().hex[:8]}"
    await admin(admin_url, f'CREATE DATABASE "{database}"')
    engine = create_async_engine(admin_url.set(database=database), pool_size=20)
    bus = await open_bus(transport, settings)
    try:
        metadata = MetaData(naming_convention=NAMING_CONVENTION)
        define_outbox_tables(metadata)
        async with engine.begin() as connection:
            await connection.run_sync(metadata.create_all)
        await fill_outbox(engine, count)

        relay = OutboxRelay.from_settings(engine, bus, settings)
        started = time.perf_counter()
        while await relay.publish_batch():
            pass
        relay_rate = count / (time.perf_counter() - started)

        async def noop(_envelope: Envelope) -> None:
            return None

        async def apply(_session: AsyncSession, _envelope: Envelope) -> None:
            return None

        factory = async_sessionmaker(engine, expire_on_commit=False)
        inbox = idempotent_handler(factory, group=f"bench-{uuid.uuid4().hex[:8]}", apply=apply)
        return Figures(
            relay=relay_rate,
            consume_noop=await time_consumer(bus, settings, noop, count),
            consume_inbox=await time_consumer(bus, settings, inbox, count),
        )
    finally:
        await clean(bus, prefix)
        await bus.close()
        await engine.dispose()
        await admin(admin_url, f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')


async def nats_reachable() -> bool:
    settings = EventSettings(_env_file=None)  # pyright: ignore[reportCallIssue]
    url = os.environ.get("BENCH_NATS_URL", settings.nats_url)
    try:
        async with asyncio.timeout(2):
            bus = await NatsJetStreamBus.connect(settings.model_copy(update={"nats_url": url}))
    except (TimeoutError, OSError):
        return False
    await bus.close()
    return True


async def main() -> None:
    parser = argparse.ArgumentParser(description="Event backbone throughput on this machine.")
    parser.add_argument("--transport", choices=["redis", "nats", "both"], default="both")
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    configure_logging(level="WARNING", renderer="console")
    admin_url = make_url(
        os.environ.get("BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    ).set(drivername="postgresql+asyncpg")
    transports = ["redis", "nats"] if args.transport == "both" else [args.transport]
    if "nats" in transports and not await nats_reachable():
        print("NATS not reachable; skipping it")
        transports.remove("nats")
    print(f"{args.events} events per run, {args.runs} runs, events/s")
    for transport in transports:
        runs = [await one_run(transport, admin_url, args.events) for _ in range(args.runs)]
        for n, figures in enumerate(runs, 1):
            print(
                f"{transport:5} run {n}: relay {figures.relay:8.0f}  consumer no-op "
                f"{figures.consume_noop:8.0f}  consumer with inbox {figures.consume_inbox:8.0f}"
            )
        print(
            f"{transport:5} median: relay {statistics.median(f.relay for f in runs):8.0f}  "
            f"consumer no-op {statistics.median(f.consume_noop for f in runs):8.0f}  "
            f"consumer with inbox {statistics.median(f.consume_inbox for f in runs):8.0f}"
        )


if __name__ == "__main__":
    asyncio.run(main())
