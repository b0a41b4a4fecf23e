"""A small closed-loop load test of a running Post Service (not collected by pytest).

Writes posts, then reads the author's timeline, each with a fixed number of requests in flight,
and prints latency percentiles. Point it at a server you started and own; it writes posts.

    uv run python services/post-service/tests/loadtest.py \\
        --base-url http://127.0.0.1:15002 --token "$TOKEN" --requests 2000 --concurrency 16
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import statistics
import time
from collections.abc import Awaitable, Callable

import httpx


def percentile(sorted_values: list[float], fraction: float) -> float:
    index = min(len(sorted_values) - 1, max(0, round(fraction * len(sorted_values)) - 1))
    return sorted_values[index]


async def run_phase(
    name: str,
    call: Callable[[int], Awaitable[httpx.Response]],
    *,
    requests: int,
    concurrency: int,
    expected: int,
) -> None:
    latencies: list[float] = []
    failures = 0
    next_index = 0

    async def worker() -> None:
        nonlocal next_index, failures
        while next_index < requests:
            index = next_index
            next_index += 1
            started = time.perf_counter()
            response = await call(index)
            latencies.append((time.perf_counter() - started) * 1000)
            failures += response.status_code != expected

    began = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - began
    latencies.sort()
    print(
        f"{name:<24} n={len(latencies)} failures={failures} "
        f"rps={len(latencies) / elapsed:7.1f} "
        f"p50={percentile(latencies, 0.50):6.1f}ms p95={percentile(latencies, 0.95):6.1f}ms "
        f"p99={percentile(latencies, 0.99):6.1f}ms max={latencies[-1]:6.1f}ms "
        f"mean={statistics.fmean(latencies):6.1f}ms"
    )


def token_subject(token: str) -> str:
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))["sub"]


async def main() -> None:
    parser = argparse.ArgumentParser(description="Load test of a running Post Service.")
    parser.add_argument("--base-url", default="http://127.0.0.1:15002")
    parser.add_argument("--token", required=True, help="an access token for the author")
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--warmup", type=int, default=100)
    args = parser.parse_args()

    author = token_subject(args.token)
    headers = {"Authorization": f"Bearer {args.token}"}
    limits = httpx.Limits(
        max_connections=args.concurrency, max_keepalive_connections=args.concurrency
    )
    async with httpx.AsyncClient(base_url=args.base_url, limits=limits, timeout=30) as client:

        async def write(index: int) -> httpx.Response:
            text = f"load test post {index} for #bench with https://example.com/{index}"
            return await client.post("/posts", json={"text": text}, headers=headers)

        async def read_timeline(index: int) -> httpx.Response:
            return await client.get(f"/users/{author}/posts", params={"limit": 20})

        for name, call, expected in (
            ("POST /posts", write, 201),
            ("GET /users/{id}/posts", read_timeline, 200),
        ):
            await run_phase(
                f"{name} (warm-up)",
                call,
                requests=args.warmup,
                concurrency=args.concurrency,
                expected=expected,
            )
            await run_phase(
                name, call, requests=args.requests, concurrency=args.concurrency, expected=expected
            )


if __name__ == "__main__":
    asyncio.run(main())
