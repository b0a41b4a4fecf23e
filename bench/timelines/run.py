"""Home timelines measured on a running system (``python3 dev.py up`` or compose).

Three figures, each through the services' public APIs, with Redis read directly only to see
the moment a post lands in a timeline:

1. Post-to-timeline delay: an author with ``--followers`` active followers posts ``--posts``
   times; for each post, the time from ``POST /posts`` returning until it is in each follower's
   timeline (Redis polled every 2 ms). p50 / p99 / max over all (post, follower) pairs.
2. Fan-out rate: an author with ``--big-followers`` active followers posts; timeline inserts/s
   from the first follower's insert to the last one's (the worker's pipelined batches).
3. ``GET /timelines/home`` under closed-loop load: ``--concurrency`` clients, random followers,
   ``--seconds`` long; req/s, p50 / p99. ``--rounds N`` repeats it and prints the medians;
   ``--only-home`` skips 1 and 2 (the followers' timelines are still seeded with ``--posts``);
   ``--cpu-ports`` adds the CPU time one read costs the servers on those ports (run as a user
   who may see their sockets).

Usage, with the system started by ``python3 dev.py up`` (its signing key is read from .data/;
its Redis must be reachable: start it with REDIS_HOST set, or pass the embedded server's
address):
    uv run python bench/timelines/run.py --redis-url redis://127.0.0.1:6379/0
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
import uuid
from pathlib import Path

import httpx
import psutil
from redis.asyncio import Redis

from terrascale.common.auth import AccessTokenIssuer
from terrascale.common.keys import load_private_key

DEV_KEY = Path(".data/jwt/signing-key.pem")


class Tokens:
    """Access tokens signed with the running system's key (dev.py keeps it in .data/jwt)."""

    def __init__(self, key_file: Path) -> None:
        key = load_private_key(key_file.read_text())
        self.issuer = AccessTokenIssuer(key, "terrascale", "terrascale", 3600)

    def headers(self, user_id: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.issuer.issue(int(user_id))}"}


async def gather_bounded(calls: list, limit: int = 16) -> list:  # type: ignore[type-arg]
    semaphore = asyncio.Semaphore(limit)

    async def one(call):  # type: ignore[no-untyped-def]
        async with semaphore:
            return await call

    return await asyncio.gather(*(one(call) for call in calls))


async def sign_up(client: httpx.AsyncClient, name: str) -> str:
    response = await client.post("/users/", json={"username": name})
    response.raise_for_status()
    return response.json()["id"]


async def audience(args: argparse.Namespace, tokens: Tokens, size: int) -> tuple[str, list[str]]:
    """An author and ``size`` followers, each with an active (read once) home timeline."""
    tag = uuid.uuid4().hex[:6]
    async with (
        httpx.AsyncClient(base_url=args.user_service, timeout=30) as users,
        httpx.AsyncClient(base_url=args.graph_service, timeout=30) as graph,
        httpx.AsyncClient(base_url=args.timeline_service, timeout=30) as timelines,
    ):
        author = await sign_up(users, f"bench{tag}_author")
        followers = await gather_bounded(
            [sign_up(users, f"bench{tag}_{index}") for index in range(size)]
        )

        async def follow(follower: str) -> None:
            response = await graph.put(
                f"/users/{follower}/following/{author}", headers=tokens.headers(follower)
            )
            response.raise_for_status()

        async def activate(follower: str) -> None:
            response = await timelines.get(
                "/timelines/home?limit=1", headers=tokens.headers(follower)
            )
            response.raise_for_status()

        await gather_bounded([follow(follower) for follower in followers])
        await asyncio.sleep(2)  # let follow.created reach the timeline worker
        await gather_bounded([activate(follower) for follower in followers])
    return author, followers


async def arrivals(
    redis: Redis, keys: list[str], post_id: str, since: float, within: float = 30
) -> list[float]:
    """Seconds after ``since`` at which the post appeared in each timeline."""
    seen: dict[str, float] = {}
    deadline = since + within
    while len(seen) < len(keys) and time.monotonic() < deadline:
        waiting = [key for key in keys if key not in seen]
        async with redis.pipeline(transaction=False) as pipe:
            for key in waiting:
                pipe.zscore(key, post_id)
            scores = await pipe.execute()
        now = time.monotonic()
        for key, score in zip(waiting, scores, strict=True):
            if score is not None:
                seen[key] = now - since
        await asyncio.sleep(0.002)
    if len(seen) < len(keys):
        raise SystemExit(f"{len(keys) - len(seen)} timelines never got post {post_id}")
    return list(seen.values())


async def post(
    client: httpx.AsyncClient, tokens: Tokens, author: str, text: str
) -> tuple[str, float]:
    response = await client.post("/posts", json={"text": text}, headers=tokens.headers(author))
    response.raise_for_status()
    return response.json()["id"], time.monotonic()


def quantile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=1000, method="inclusive")[int(q * 1000) - 1]


async def seed_posts(args: argparse.Namespace, tokens: Tokens, author: str) -> None:
    """``--posts`` posts by the author, then time for the worker to fan them out."""
    async with httpx.AsyncClient(base_url=args.post_service, timeout=30) as posts:
        for index in range(args.posts):
            await post(posts, tokens, author, f"bench post {index}")
    await asyncio.sleep(2)


def listeners(ports: list[int]) -> dict[int, list[psutil.Process]]:
    """The processes listening on each port (every worker of a Gunicorn shares the socket)."""
    found: dict[int, list[psutil.Process]] = {port: [] for port in ports}
    for connection in psutil.net_connections("tcp"):
        if (
            connection.status == psutil.CONN_LISTEN
            and connection.laddr.port in found
            and connection.pid is not None
        ):
            found[connection.laddr.port].append(psutil.Process(connection.pid))
    return found


def cpu_seconds(processes: list[psutil.Process]) -> float:
    return sum(sum(process.cpu_times()[:2]) for process in processes)


async def read_for(
    timelines: httpx.AsyncClient, headers: list[dict[str, str]], concurrency: int, seconds: int
) -> list[float]:
    """Latencies of ``concurrency`` closed-loop readers over ``seconds``, random followers."""
    latencies: list[float] = []
    stop_at = time.monotonic() + seconds

    async def reader(seed: int) -> None:
        index = seed
        while time.monotonic() < stop_at:
            follower_headers = headers[index % len(headers)]
            index += 7919
            started = time.monotonic()
            response = await timelines.get("/timelines/home?limit=20", headers=follower_headers)
            response.raise_for_status()
            latencies.append(time.monotonic() - started)

    await asyncio.gather(*(reader(seed) for seed in range(concurrency)))
    return latencies


async def home_reads(args: argparse.Namespace, tokens: Tokens, followers: list[str]) -> None:
    """``--rounds`` closed-loop runs of ``GET /timelines/home``, each printed, then the median
    of each figure. Tokens are signed before the clock starts: signing is the load
    generator's cost, not the system's."""
    headers = [tokens.headers(follower) for follower in followers]
    figures: list[tuple[float, float, float]] = []
    async with httpx.AsyncClient(
        base_url=args.timeline_service,
        timeout=30,
        limits=httpx.Limits(max_connections=args.concurrency),
    ) as timelines:
        for _ in range(args.rounds):
            servers = listeners(args.cpu_ports)
            cpu_before = {port: cpu_seconds(found) for port, found in servers.items()}
            latencies = await read_for(timelines, headers, args.concurrency, args.seconds)
            if servers:
                # CPU is what a request costs whatever else runs on the machine: the figure to
                # compare when the load generator and neighbours make req/s noisy.
                cost = {
                    port: (cpu_seconds(found) - cpu_before[port]) / len(latencies) * 1000
                    for port, found in servers.items()
                }
                print(
                    f"CPU per request: {sum(cost.values()):.2f} ms ("
                    + ", ".join(f"port {port} {ms:.2f} ms" for port, ms in cost.items())
                    + f"), so {1000 / sum(cost.values()):.0f} req/s per busy core",
                    flush=True,
                )
            figure = (
                len(latencies) / args.seconds,
                quantile(latencies, 0.5) * 1000,
                quantile(latencies, 0.99) * 1000,
            )
            figures.append(figure)
            print(
                f"GET /timelines/home, {args.concurrency} in flight, {args.seconds} s: "
                f"{figure[0]:.0f} req/s, p50 {figure[1]:.1f} ms, p99 {figure[2]:.1f} ms",
                flush=True,
            )
    if len(figures) > 1:
        rates, p50s, p99s = zip(*figures, strict=True)
        print(
            f"median of {len(figures)} rounds: {statistics.median(rates):.0f} req/s, "
            f"p50 {statistics.median(p50s):.1f} ms, p99 {statistics.median(p99s):.1f} ms"
        )


async def main(args: argparse.Namespace) -> None:
    tokens = Tokens(args.key_file)
    redis = Redis.from_url(args.redis_url)
    prefix = args.key_prefix
    try:
        author, followers = await audience(args, tokens, args.followers)
        if args.only_home:
            await seed_posts(args, tokens, author)
            await home_reads(args, tokens, followers)
            return
        keys = [f"{prefix}home:{follower}" for follower in followers]
        delays: list[float] = []
        async with httpx.AsyncClient(base_url=args.post_service, timeout=30) as posts:
            for index in range(args.posts):
                post_id, returned = await post(posts, tokens, author, f"bench post {index}")
                delays += await arrivals(redis, keys, post_id, returned)
                await asyncio.sleep(0.2)
        print(
            f"post-to-timeline delay, {args.followers} followers, {args.posts} posts: "
            f"p50 {quantile(delays, 0.5) * 1000:.0f} ms, "
            f"p99 {quantile(delays, 0.99) * 1000:.0f} ms, max {max(delays) * 1000:.0f} ms"
        )

        big_author, big_followers = await audience(args, tokens, args.big_followers)
        big_keys = [f"{prefix}home:{follower}" for follower in big_followers]
        rates = []
        async with httpx.AsyncClient(base_url=args.post_service, timeout=30) as posts:
            for index in range(3):
                post_id, returned = await post(posts, tokens, big_author, f"big post {index}")
                times = await arrivals(redis, big_keys, post_id, returned, within=120)
                rates.append(len(times) / max(max(times) - min(times), 1e-3))
                print(
                    f"fan-out to {len(times)} timelines: first after {min(times) * 1000:.0f} ms, "
                    f"last after {max(times) * 1000:.0f} ms"
                )
        print(f"fan-out rate: median {statistics.median(rates):,.0f} timeline inserts/s")

        await home_reads(args, tokens, followers)
    finally:
        await redis.aclose()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--user-service", default="http://127.0.0.1:5000")
    parser.add_argument("--graph-service", default="http://127.0.0.1:5001")
    parser.add_argument("--post-service", default="http://127.0.0.1:5002")
    parser.add_argument("--timeline-service", default="http://127.0.0.1:5003")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--key-prefix", default="terrascale:timelines:")
    parser.add_argument("--key-file", type=Path, default=DEV_KEY)
    parser.add_argument("--followers", type=int, default=1000)
    parser.add_argument("--posts", type=int, default=20)
    parser.add_argument("--big-followers", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--seconds", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=1, help="home-read runs; medians printed")
    parser.add_argument(
        "--cpu-ports",
        type=lambda value: [int(port) for port in value.split(",")],
        default=[],
        help="e.g. 5003,5002,5000: also print the CPU each home read costs the servers there",
    )
    parser.add_argument(
        "--only-home",
        action="store_true",
        help="set up --followers and --posts, then measure only GET /timelines/home",
    )
    asyncio.run(main(parser.parse_args()))
