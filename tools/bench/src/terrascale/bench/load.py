"""Open-loop and closed-loop load, recorded in HdrHistograms.

Open loop is what wrk2 does: requests are due at a fixed mean rate with exponential gaps
(``wrk2 -D exp``), whether or not earlier ones have been answered, and each latency is measured
from the moment the request was *due*, not from when a free connection finally sent it. A server
that stalls therefore shows its stall in every request that queued behind it, instead of hiding it
by slowing the generator down (coordinated omission).

Closed loop is the max-throughput mode: ``concurrency`` callers each send their next request as
soon as the previous one is answered.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, cast

from hdrh.histogram import HdrHistogram

from terrascale.bench.client import Client, Request

LOWEST_US = 1
HIGHEST_US = 120_000_000  # two minutes
SIGNIFICANT_FIGURES = 3
PERCENTILES = (50.0, 90.0, 99.0, 99.9)
DRAIN_SECONDS = 30  # how long a run waits for its last answers; later ones count as timeouts


class Histogram:
    """Latencies in microseconds (a typed face on ``hdrh``)."""

    def __init__(self) -> None:
        self._hdr: Any = HdrHistogram(LOWEST_US, HIGHEST_US, SIGNIFICANT_FIGURES)

    def record(self, microseconds: int) -> None:
        self._hdr.record_value(min(max(microseconds, LOWEST_US), HIGHEST_US))

    @property
    def count(self) -> int:
        return cast("int", self._hdr.get_total_count())

    def percentile_ms(self, percentile: float) -> float:
        return cast("int", self._hdr.get_value_at_percentile(percentile)) / 1000

    @property
    def max_ms(self) -> float:
        return cast("int", self._hdr.get_max_value()) / 1000

    @property
    def mean_ms(self) -> float:
        return cast("float", self._hdr.get_mean_value()) / 1000


@dataclass
class OperationResult:
    latency: Histogram = field(default_factory=Histogram)
    errors: Counter[str] = field(default_factory=Counter[str])  # status code or exception name

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())


@dataclass
class RunResult:
    """One run: per-operation latencies, and how much was asked for and done."""

    mode: str  # "open" or "closed"
    offered_rate: float | None  # requests/s asked for (open loop)
    concurrency: int
    seconds: float = 0.0
    sent: int = 0
    generator_cpu_seconds: float = 0.0
    timeouts: int = 0  # requests unanswered DRAIN_SECONDS after the run's end
    operations: dict[str, OperationResult] = field(default_factory=dict[str, OperationResult])

    def operation(self, name: str) -> OperationResult:
        if name not in self.operations:
            self.operations[name] = OperationResult()
        return self.operations[name]

    @property
    def completed(self) -> int:
        return sum(op.latency.count for op in self.operations.values())

    @property
    def errors(self) -> int:
        return self.timeouts + sum(op.error_count for op in self.operations.values())

    @property
    def achieved_rate(self) -> float:
        return self.completed / self.seconds if self.seconds else 0.0

    @property
    def generator_us_per_request(self) -> float:
        done = self.completed + self.errors
        return 1e6 * self.generator_cpu_seconds / done if done else 0.0

    def overall(self) -> Histogram:
        merged = Histogram()
        for op in self.operations.values():
            merged._hdr.add(op.latency._hdr)
        return merged


NextRequest = Callable[[], Request]


async def _measure(client: Client, request: Request, due: float, result: RunResult) -> None:
    """Send one request and record its latency from ``due`` (a ``perf_counter`` time)."""
    operation = result.operation(request.operation)
    try:
        response = await client.send(request)
    except (TimeoutError, OSError) as error:
        operation.errors[type(error).__name__] += 1
        return
    if response.status >= 400:  # noqa: PLR2004
        operation.errors[str(response.status)] += 1
        return
    operation.latency.record(round((time.perf_counter() - due) * 1e6))


async def open_loop(
    next_request: NextRequest,
    *,
    rate: float,
    seconds: float,
    connections: int,
    rng: random.Random,
) -> RunResult:
    """Requests due at ``rate`` per second on average, exponential gaps, for ``seconds``."""
    result = RunResult("open", rate, connections)
    client = Client(connections)
    in_flight: set[asyncio.Task[None]] = set()
    cpu_started = time.process_time()
    started = time.perf_counter()
    due = started
    try:
        while True:
            due += rng.expovariate(rate)
            if due - started >= seconds:
                break
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            task = asyncio.create_task(_measure(client, next_request(), due, result))
            in_flight.add(task)
            task.add_done_callback(in_flight.discard)
            result.sent += 1
        if in_flight:
            _, unanswered = await asyncio.wait(in_flight, timeout=DRAIN_SECONDS)
            result.timeouts = len(unanswered)
        result.seconds = time.perf_counter() - started
        result.generator_cpu_seconds = time.process_time() - cpu_started
    finally:
        for task in in_flight:
            task.cancel()
        client.close()
    return result


async def closed_loop(next_request: NextRequest, *, concurrency: int, seconds: float) -> RunResult:
    """``concurrency`` callers, each sending again as soon as it has its answer."""
    result = RunResult("closed", None, concurrency)
    client = Client(concurrency)
    cpu_started = time.process_time()
    started = time.perf_counter()
    stop_at = started + seconds

    async def caller() -> None:
        while (now := time.perf_counter()) < stop_at:
            result.sent += 1
            await _measure(client, next_request(), now, result)

    callers = [asyncio.create_task(caller()) for _ in range(concurrency)]
    try:
        _, unanswered = await asyncio.wait(callers, timeout=seconds + DRAIN_SECONDS)
        result.timeouts = len(unanswered)
    finally:
        for task in callers:
            task.cancel()
        client.close()
    result.seconds = time.perf_counter() - started
    result.generator_cpu_seconds = time.process_time() - cpu_started
    return result
