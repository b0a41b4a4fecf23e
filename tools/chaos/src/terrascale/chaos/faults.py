"""The faults, each injected into the running system and then healed.

Blocking steps (killing, restarting and waiting for health) run in a thread so the clients'
event loop keeps sending while the fault happens.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import cast

from redis.asyncio import Redis
from redis.exceptions import RedisError

from terrascale.launcher.cli import RunningSystem

MID_BATCH_WAIT_SECONDS = 10.0  # how long to wait for a worker to have entries in hand


@dataclass(frozen=True, slots=True)
class FaultContext:
    system: RunningSystem
    redis: Redis  # the harness's own client of the event bus's server
    event_key_prefix: str
    down_seconds: float  # how long a stopped server stays down
    rng: random.Random
    writes_in_flight: Callable[[], int]  # the clients' write requests not answered yet


@dataclass(frozen=True, slots=True)
class Fault:
    name: str
    inject: Callable[[FaultContext], Awaitable[str]]  # returns a note on what it did
    heal: Callable[[FaultContext], Awaitable[None]]


async def group_backlog(
    redis: Redis, prefix: str, group: str | None = None, *, unread_only: bool = False
) -> int:
    """Entries not read yet plus (unless ``unread_only``) entries read and not acknowledged,
    over the event streams, for one consumer group or all (as ``events_settled`` counts)."""
    total = 0
    async for key in redis.scan_iter(match=f"{prefix}events:*", count=1000, _type="stream"):
        for info in await redis.xinfo_groups(key):
            name = info["name"].decode() if isinstance(info["name"], bytes) else info["name"]
            if group is None or name == group:
                total += int(info["lag"] or 0) + (0 if unread_only else int(info["pending"]))
    return total


async def pending_of(redis: Redis, prefix: str, group: str) -> int:
    total = 0
    async for key in redis.scan_iter(match=f"{prefix}events:*", count=1000, _type="stream"):
        for info in await redis.xinfo_groups(key):
            name = info["name"].decode() if isinstance(info["name"], bytes) else info["name"]
            if name == group:
                total += int(info["pending"])
    return total


BEHIND = ("timeline-service", "notification-service")  # the consumers of post.created


async def _kill_valkey(context: FaultContext) -> str:
    """SIGKILL while post events wait in the streams unread: the consumers are paused for a
    moment first (as a CPU-starved or GC-paused worker is), so the crash finds a backlog, as
    it would under load. Whether those entries survive is whether the bus keeps what the
    outbox relay was told it stored."""
    assert context.system.valkey is not None  # noqa: S101 - the harness embeds its servers
    workers = [context.system.process(service, "worker").pid for service in BEHIND]
    for pid in workers:
        os.killpg(pid, signal.SIGSTOP)
    try:
        unread = await _wait_for(
            lambda: group_backlog(context.redis, context.event_key_prefix, unread_only=True)
        )
        await asyncio.to_thread(context.system.valkey.kill)
    finally:
        for pid in workers:
            os.killpg(pid, signal.SIGCONT)
    await asyncio.sleep(context.down_seconds)
    return f"SIGKILL with {unread} entries not yet read by a consumer group"


async def _wait_for(count: Callable[[], Awaitable[int]]) -> int:
    """Poll ``count`` until it is positive (or MID_BATCH_WAIT_SECONDS pass); its last value."""
    deadline = time.monotonic() + MID_BATCH_WAIT_SECONDS
    found = 0
    while time.monotonic() < deadline:
        found = await count()
        if found:
            break
        await asyncio.sleep(0.005)
    return found


async def _start_valkey(context: FaultContext) -> None:
    assert context.system.valkey is not None  # noqa: S101
    await asyncio.to_thread(context.system.valkey.start)


async def _stop_postgres(context: FaultContext) -> str:
    assert context.system.postgres is not None  # noqa: S101
    await asyncio.to_thread(context.system.postgres.stop_immediately)
    await asyncio.sleep(context.down_seconds)
    return "pg_ctl stop -m immediate"


async def _start_postgres(context: FaultContext) -> None:
    assert context.system.postgres is not None  # noqa: S101
    await asyncio.to_thread(context.system.postgres.restart)


def _kill_mid_request(service: str) -> Callable[[FaultContext], Awaitable[str]]:
    """SIGKILL the API's process group while writes are in flight: each is either committed
    or not, and its client learns neither; the retry with the same Idempotency-Key decides."""

    async def inject(context: FaultContext) -> str:
        in_flight = await _wait_for(lambda: _now(context.writes_in_flight()))
        await asyncio.to_thread(context.system.kill, service, "start")
        return f"SIGKILL to the process group with {in_flight} writes in flight"

    return inject


async def _now(value: int) -> int:
    return value


def _kill_mid_batch(service: str) -> Callable[[FaultContext], Awaitable[str]]:
    """SIGKILL the worker while it holds entries it read and has not acknowledged."""

    async def inject(context: FaultContext) -> str:
        in_hand = await _wait_for(
            lambda: pending_of(context.redis, context.event_key_prefix, service)
        )
        await asyncio.to_thread(context.system.kill, service, "worker")
        return f"SIGKILL with {in_hand} entries read and not acknowledged"

    return inject


def _restart(service: str, command: str) -> Callable[[FaultContext], Awaitable[None]]:
    async def heal(context: FaultContext) -> None:
        await asyncio.to_thread(context.system.restart, service, command)

    return heal


async def _redeliver_shuffled(context: FaultContext) -> str:
    """XADD copies of already-delivered post.created and follow.created envelopes, shuffled, to
    the streams they came from: duplicates, and each one out of order with what follows it."""
    copies: list[tuple[str, bytes]] = []
    for category, event_type in (("post", b'"post.created"'), ("follow", b'"follow.created"')):
        pattern = f"{context.event_key_prefix}events:{category}:[0-9]*"
        async for key in context.redis.scan_iter(match=pattern, count=1000, _type="stream"):
            stream = key.decode() if isinstance(key, bytes) else key
            entries = cast(
                list[tuple[bytes, dict[bytes, bytes]]], await context.redis.xrange(stream)
            )
            copies += [
                (stream, fields[b"envelope"])
                for _, fields in entries
                if event_type in fields.get(b"envelope", b"")
            ]
    chosen = context.rng.sample(copies, min(len(copies), max(20, len(copies) // 4)))
    context.rng.shuffle(chosen)
    async with context.redis.pipeline(transaction=False) as pipe:
        for stream, envelope in chosen:
            pipe.xadd(stream, {b"envelope": envelope})
        await pipe.execute()
    return f"{len(chosen)} of {len(copies)} delivered envelopes added again, shuffled"


async def _nothing(_context: FaultContext) -> None:
    return None


async def _no_fault(_context: FaultContext) -> str:
    return "no fault: the control row"


BASELINE = Fault("none (baseline)", _no_fault, _nothing)
FAULTS: tuple[Fault, ...] = (
    Fault("Redis (Valkey) SIGKILL + restart", _kill_valkey, _start_valkey),
    Fault("PostgreSQL immediate stop + start", _stop_postgres, _start_postgres),
    Fault(
        "post service SIGKILL mid-request + restart",
        _kill_mid_request("post-service"),
        _restart("post-service", "start"),
    ),
    Fault(
        "timeline worker SIGKILL mid-batch + restart",
        _kill_mid_batch("timeline-service"),
        _restart("timeline-service", "worker"),
    ),
    Fault(
        "notification worker SIGKILL mid-batch + restart",
        _kill_mid_batch("notification-service"),
        _restart("notification-service", "worker"),
    ),
    Fault("duplicate + out-of-order delivery", _redeliver_shuffled, _nothing),
)


async def caught_up_after(
    redis: Redis, prefix: str, moment: float, *, within: float
) -> float | None:
    """Seconds from ``moment`` until no consumer group has anything left (None: not within)."""
    deadline = moment + within
    while time.monotonic() < deadline:
        try:
            if await group_backlog(redis, prefix) == 0:
                return time.monotonic() - moment
        except RedisError:
            pass  # the server may still be loading its data
        await asyncio.sleep(0.1)
    return None


def select(names: Sequence[str] | None) -> tuple[Fault, ...]:
    """The faults whose name contains one of ``names`` (all when None)."""
    if not names:
        return FAULTS
    return tuple(f for f in FAULTS if any(n.lower() in f.name.lower() for n in names))
