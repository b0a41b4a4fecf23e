"""A SimPy simulation of one timeline-read node: Poisson arrivals, ``workers`` servers, FIFO.

With a load balancer that picks nodes at random, each node of a region sees Poisson arrivals
at the region's rate divided by its nodes, so one node stands for the tier.

Service times are *fitted*, not replayed: a lognormal whose mean is the measured CPU capacity
(``workers`` / 918 req/s) and whose spread (sigma) is fitted to the measured p99/p50 ratio at 25%
load, where queueing is still small. Exponential service is there to check against M/M/c.
"""

from __future__ import annotations

import math
import random
from collections.abc import Generator
from dataclasses import dataclass
from statistics import NormalDist, fmean
from typing import Any, Literal

import simpy

Distribution = Literal["lognormal", "exponential"]

Z99 = NormalDist().inv_cdf(0.99)


def lognormal_sigma_from_quantiles(p50: float, p99: float) -> float:
    """Sigma of the lognormal whose p99/p50 ratio is the given one."""
    return math.log(p99 / p50) / Z99


@dataclass(frozen=True, slots=True)
class SimulationResult:
    utilisation: float
    requests: int
    mean_ms: float
    p50_ms: float
    p99_ms: float


def _percentile(sorted_values: list[float], fraction: float) -> float:
    index = min(len(sorted_values) - 1, math.ceil(fraction * len(sorted_values)) - 1)
    return sorted_values[max(index, 0)]


def simulate_node(
    arrival_rate: float,
    mean_service_s: float,
    workers: int,
    *,
    distribution: Distribution = "lognormal",
    sigma: float = 0.5,
    requests: int = 40_000,
    warmup: int = 4_000,
    seed: int = 1,
) -> SimulationResult:
    """Response times (wait plus service) of ``requests`` arrivals after ``warmup`` ones."""
    generator = random.Random(seed)  # noqa: S311  (a seeded simulation, not secrets)
    if distribution == "exponential":

        def draw_service() -> float:
            return generator.expovariate(1 / mean_service_s)
    else:
        mu = math.log(mean_service_s) - sigma**2 / 2  # so that the mean is mean_service_s

        def draw_service() -> float:
            return generator.lognormvariate(mu, sigma)

    env = simpy.Environment()
    servers = simpy.Resource(env, capacity=workers)
    response_times: list[float] = []
    total = warmup + requests

    def request(index: int, service_s: float) -> Generator[simpy.Event, Any, None]:
        arrived = env.now
        with servers.request() as slot:
            yield slot
            yield env.timeout(service_s)
        if index >= warmup:
            response_times.append(env.now - arrived)

    def arrivals() -> Generator[simpy.Event, Any, None]:
        # Both draws at arrival: with one seed, the n-th request has the same gap (scaled by
        # the rate) and service at every load, so curves over load are smooth and monotone.
        for index in range(total):
            yield env.timeout(generator.expovariate(arrival_rate))
            env.process(request(index, draw_service()))

    env.process(arrivals())
    env.run()
    ordered = sorted(response_times)
    return SimulationResult(
        utilisation=arrival_rate * mean_service_s / workers,
        requests=len(ordered),
        mean_ms=fmean(ordered) * 1000,
        p50_ms=_percentile(ordered, 0.50) * 1000,
        p99_ms=_percentile(ordered, 0.99) * 1000,
    )
