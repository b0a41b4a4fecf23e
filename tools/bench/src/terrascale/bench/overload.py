"""Overload and soak: what a service does past its capacity, and whether it stays the same
over minutes at a steady load below it.

Overload offers twice the measured maximum, open loop, over more connections than the service
admits at once, so the service (not the load generator's connection pool) decides what to do
with the excess. Soak offers a steady fraction of the maximum for minutes, in windows, and
reports each window's latency, errors and memory: growth across windows is a leak or creep.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

import psutil

from terrascale.bench.load import NextRequest, RunResult, open_loop
from terrascale.launcher.cli import RunningSystem

MIB = 1024 * 1024


def service_rss_mib(system: RunningSystem, name: str) -> float:
    """Resident memory of a service's process tree (the Gunicorn master and its workers)."""
    total = 0
    for spec, process in system.processes:
        if spec.name != name or process.poll() is not None:
            continue
        parent = psutil.Process(process.pid)
        if "worker" in parent.cmdline():
            continue  # the event worker is another process tree
        for member in [parent, *parent.children(recursive=True)]:
            try:
                total += member.memory_info().rss
            except psutil.NoSuchProcess:
                continue
    return total / MIB


def shed(run: RunResult) -> int:
    return sum(op.errors.get("503", 0) for op in run.operations.values())


def other_errors(run: RunResult) -> int:
    return run.errors - shed(run)


async def overload(
    system: RunningSystem,
    next_request: NextRequest,
    *,
    service: str,
    maximum_rate: float,
    seconds: float,
    connections: int,
    rng: random.Random,
) -> dict[str, str]:
    offered = 2 * maximum_rate
    before = service_rss_mib(system, service)
    run = await open_loop(
        next_request, rate=offered, seconds=seconds, connections=connections, rng=rng
    )
    after = service_rss_mib(system, service)
    admitted = run.overall()
    return {
        "overload: offered (2x maximum)": f"{offered:,.0f} req/s over {connections} connections",
        "overload: answered 2xx": f"{run.completed / run.seconds:,.0f} req/s",
        "overload: shed (503 overloaded)": f"{shed(run):,} of {run.sent:,} sent",
        "overload: other errors and timeouts": f"{other_errors(run):,}",
        "overload: p50 / p99 of admitted requests": (
            f"{admitted.percentile_ms(50):,.1f} / {admitted.percentile_ms(99):,.1f} ms"
        ),
        f"overload: {service} memory before, after": f"{before:,.0f} MiB, {after:,.0f} MiB",
    }


async def soak(
    system: RunningSystem,
    next_request: NextRequest,
    *,
    service: str,
    rate: float,
    seconds: float,
    window_seconds: float,
    connections: int,
    rng: random.Random,
) -> dict[str, str]:
    windows: list[tuple[RunResult, float]] = []
    elapsed = 0.0
    while elapsed < seconds:
        run = await open_loop(
            next_request, rate=rate, seconds=window_seconds, connections=connections, rng=rng
        )
        windows.append((run, service_rss_mib(system, service)))
        elapsed += run.seconds
    return {
        f"soak: {len(windows)} windows of {window_seconds:g} s at {rate:,.0f} req/s": (
            soak_summary(windows)
        )
    }


def soak_summary(windows: Sequence[tuple[RunResult, float]]) -> str:
    """Per window: p99 ms, errors, memory; then the change of memory from first to last."""
    parts = [
        f"{run.overall().percentile_ms(99):,.1f} ms/{run.errors} err/{rss:,.0f} MiB"
        for run, rss in windows
    ]
    growth = windows[-1][1] - windows[0][1] if windows else 0.0
    return "; ".join(parts) + f" (memory {growth:+,.0f} MiB first to last)"
