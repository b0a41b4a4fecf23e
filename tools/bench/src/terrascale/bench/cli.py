"""``terrascale-bench``: DeathStarBench's social-network workload against a system it starts.

    python3 dev.py bench                       # socfb-Reed98, about 15 minutes
    python3 dev.py bench --quick               # a small graph and short runs: checks the harness
    python3 dev.py bench --graph power-law --users 50000 --celebrities 3

One run: start the whole system on embedded PostgreSQL and Valkey (``terrascale up`` with its
data in a temporary folder, services on ports 5100-5104 by default, so a ``dev.py up`` on the
standard ports can keep running), measure the ceilings, seed the graph through the public API,
then for each operation a closed-loop maximum and an open-loop sweep at fractions of it, the
fan-out rate and the timeline store's memory per entry. Everything goes to
``bench/results/<time>-<revision>/`` (report.md, results.json, PNG plots, the services' log)
and the report is printed.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import shlex
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path

import orjson
import uvloop
from redis.asyncio import Redis

from terrascale.bench import ceilings, overload, report
from terrascale.bench.client import Request, encode_request
from terrascale.bench.graphs import Graph, power_law, reed98
from terrascale.bench.load import RunResult, closed_loop, open_loop
from terrascale.bench.seed import say, seed, send_all, wait_until_settled
from terrascale.bench.workload import (
    COMPOSE,
    HOME,
    MIXED,
    USER,
    Endpoints,
    Population,
    Workload,
    token_issuer,
)
from terrascale.common.auth import AccessTokenIssuer
from terrascale.launcher.cli import RunningSystem, ensure_database, running_system
from terrascale.timelines.config import TimelineSettings

PROFILE = "read-user-profile"  # cached GET /users/{id}: not in DeathStarBench's mix
SWEEP_FRACTIONS = (0.25, 0.5, 0.75, 0.9)
MIXED_TARGET_RATE = 1500
SOAK_FRACTION = 0.7
SOAK_WINDOW_SECONDS = 60.0
RESULTS = ceilings.REPO / "bench" / "results"


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="terrascale-bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--graph", choices=["reed98", "power-law"], default="reed98")
    parser.add_argument("--users", type=int, default=10_000, help="power-law graph size")
    parser.add_argument("--mean-degree", type=float, default=20.0)
    parser.add_argument("--exponent", type=float, default=2.2, help="power-law tail exponent")
    parser.add_argument("--celebrities", type=int, default=0)
    parser.add_argument("--celebrity-reach", type=float, default=0.5)
    parser.add_argument("--seed", type=int, default=1, help="random seed (graph and workload)")
    parser.add_argument("--posts-per-user", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=15, help="length of each load run")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--seed-concurrency", type=int, default=16)
    parser.add_argument(
        "--fanout-followers", type=int, help="active followers of the fan-out author (10,000)"
    )
    parser.add_argument("--workers", type=int, default=2, help="WEB_CONCURRENCY of every server")
    parser.add_argument("--port-base", type=int, default=5100)
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument(
        "--overload",
        action="store_true",
        help="also offer the home timeline twice its maximum and report what is shed",
    )
    parser.add_argument("--overload-connections", type=int, default=1024)
    parser.add_argument(
        "--soak-seconds",
        type=float,
        default=0.0,
        help="also hold the home timeline at 70%% of its maximum this long (e.g. 600)",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="a 150-user graph, 2 s runs, 100 fan-out followers (unless given): checks the "
        "harness end to end",
    )
    args = parser.parse_args(argv)
    args.warm_up = 2.0
    if args.quick:
        args.graph, args.users, args.mean_degree = "power-law", 150, 10.0
        args.seconds, args.warm_up = 2.0, 0.5
        args.posts_per_user = 1
    if args.fanout_followers is None:
        args.fanout_followers = 100 if args.quick else 10_000
    return args


def build_graph(args: argparse.Namespace) -> Graph:
    if args.graph == "reed98":
        return reed98()
    return power_law(
        args.users,
        mean_degree=args.mean_degree,
        exponent=args.exponent,
        celebrities=args.celebrities,
        celebrity_reach=args.celebrity_reach,
        seed=args.seed,
    )


def profile_requests(
    population: Population, user_service: str, rng: random.Random
) -> Callable[[], Request]:
    requests = [
        encode_request(PROFILE, "GET", f"{user_service}/users/{user_id}")
        for user_id in population.ids
    ]
    return lambda: rng.choice(requests)


async def fanout(
    system: RunningSystem,
    *,
    redis: Redis,
    issuer: AccessTokenIssuer,
    followers: int,
    concurrency: int,
    databases: Sequence[str],
) -> dict[str, str]:
    """One author with ``followers`` active followers posts 3 times; how fast it reaches them."""
    user_service = system.base_url("user-service")
    tag = f"{random.randrange(36**4):04x}"
    names = [f"f{tag}_{index}" for index in range(followers + 1)]
    signups = [
        encode_request(
            "sign-up", "POST", f"{user_service}/users/", body=orjson.dumps({"username": n})
        )
        for n in names
    ]
    ids = [
        int(orjson.loads(a.body)["id"])
        for a in await send_all(signups, concurrency=concurrency, what="sign-up")
    ]
    author, fans = ids[0], ids[1:]
    tokens = {user_id: issuer.issue(user_id) for user_id in ids}

    def as_user(user_id: int) -> dict[str, str]:
        return {"Authorization": f"Bearer {tokens[user_id]}"}

    graph_service = system.base_url("graph-service")
    follows = [
        encode_request(
            "follow",
            "POST",
            f"{graph_service}/users/{fan}/following",
            headers=as_user(fan),
            body=orjson.dumps({"user_ids": [str(author)]}),
        )
        for fan in fans
    ]
    await send_all(follows, concurrency=concurrency, what="follow")
    await wait_until_settled(redis, system.postgres_admin_url, databases)
    timeline_service = system.base_url("timeline-service")
    reads = [
        encode_request(
            "home", "GET", f"{timeline_service}/timelines/home?limit=1", headers=as_user(fan)
        )
        for fan in fans
    ]
    await send_all(reads, concurrency=concurrency, what="home timeline")

    prefix = TimelineSettings.model_fields["cache_key_prefix"].default
    keys = [f"{prefix}home:{fan}" for fan in sorted(fans)]
    # The worker writes followers in id order, batch after batch: watching the lowest and the
    # highest ids times the first and the last insert with polls of 2 x 50 keys (a few ms),
    # where polling all of them would take longer than the fan-out itself.
    watched = keys[:50] + keys[-50:]
    spans: list[float] = []
    firsts: list[float] = []
    lasts: list[float] = []
    for index in range(3):
        body = orjson.dumps({"text": f"fan-out check {index}"})
        post = encode_request(
            "post",
            "POST",
            f"{system.base_url('post-service')}/posts",
            headers=as_user(author),
            body=body,
        )
        [answer] = await send_all([post], concurrency=1, what="post")
        returned = time.perf_counter()
        post_id = orjson.loads(answer.body)["id"]
        arrived: dict[str, float] = {}  # key -> end of the poll that first saw the post
        none_before = 0.0  # start of the last poll that saw the post nowhere
        deadline = returned + 120
        while len(arrived) < len(watched) and time.perf_counter() < deadline:
            waiting = [key for key in watched if key not in arrived]
            polled = time.perf_counter() - returned
            scores = await _scores(redis, waiting, post_id)
            now = time.perf_counter() - returned
            arrived |= {key: now for key, score in zip(waiting, scores, strict=True) if score}
            if not arrived:
                none_before = polled
            await asyncio.sleep(0.001)
        missing = sum(1 for score in await _scores(redis, keys, post_id) if not score)
        if missing:
            raise RuntimeError(f"{missing} timelines never got post {post_id}")
        # The fan-out took at most this long: from before the first insert to after the last.
        spans.append(max(arrived.values()) - none_before)
        firsts.append(min(arrived.values()))
        lasts.append(max(arrived.values()))
    span = statistics.median(spans)
    return {
        f"fan-out, one author with {followers:,} active followers (3 posts)": (
            f"at least {followers / span:,.0f} timeline inserts/s: all {followers:,} timelines "
            f"written within {span * 1000:,.0f} ms (median of 3; from the last poll that saw no "
            "insert to the one that saw the last)"
        ),
        "post-to-follower-timeline delay, same posts": (
            f"first follower after {statistics.median(firsts) * 1000:,.0f} ms, last after "
            f"{statistics.median(lasts) * 1000:,.0f} ms (medians of 3, from POST /posts returning)"
        ),
    }


async def _scores(redis: Redis, keys: Sequence[str], member: str) -> list[float | None]:
    async with redis.pipeline(transaction=False) as pipe:
        for key in keys:
            pipe.zscore(key, member)
        return await pipe.execute()


async def _memory_per_entry(redis: Redis, entries: int, keys: int) -> tuple[float, str]:
    """Median bytes per entry of ``keys`` sorted sets of ``entries`` post ids, and encoding."""
    base = 250_000_000_000_000_000  # ids of the same magnitude as real post ids
    prefix = "bench:memory:"
    used: list[int] = []
    encoding = ""
    try:
        for key_index in range(keys):
            key = f"{prefix}{key_index}"
            start = base + key_index * 10_000_000
            ids = [start + step * 4096 for step in range(entries)]
            await redis.zadd(key, {str(post_id): float(post_id) for post_id in ids})
            used.append(int(await redis.memory_usage(key, samples=0) or 0))
            encoding = str(await redis.object("encoding", key))
    finally:
        async for key in redis.scan_iter(match=f"{prefix}*", count=1000):
            await redis.delete(key)
    return statistics.median(used) / entries, encoding


async def timeline_memory(redis: Redis, entries: int = 800, keys: int = 200) -> dict[str, str]:
    """Bytes per timeline entry, at the server's zset encoding threshold and with one that keeps
    a full timeline in the compact listpack encoding (restored afterwards)."""
    setting = "zset-max-listpack-entries"
    configured = str((await redis.config_get(setting))[setting])
    figures: dict[str, str] = {}
    users = 1_000_000
    for threshold in (configured, str(max(entries, 1024))):
        await redis.config_set(setting, threshold)
        try:
            per_entry, encoding = await _memory_per_entry(redis, entries, keys)
        finally:
            await redis.config_set(setting, configured)
        total = per_entry * entries * users / 2**30
        figures[f"timeline store, {entries} entries, {setting}={threshold}"] = (
            f"{per_entry:.1f} bytes per entry ({encoding}); 1M users x {entries} = {total:,.1f} GiB"
        )
    return figures


def timed(label: str, run: RunResult) -> RunResult:
    overall = run.overall()
    say(
        f"{label}: {run.achieved_rate:,.0f} req/s, p50 {overall.percentile_ms(50):.1f} ms, "
        f"p99 {overall.percentile_ms(99):.1f} ms, errors {run.errors}"
    )
    return run


async def measure_operations(
    args: argparse.Namespace,
    operations: dict[str, Callable[[], Request]],
    bare_url: str,
    result: report.Report,
    rng: random.Random,
) -> None:
    """Per operation: the bare endpoint's maximum, then the operation's, back to back (so the
    ratio compares two runs seconds apart), then an open-loop sweep below the operation's."""
    bare = encode_request("bare", "GET", bare_url)
    fractions = (0.5,) if args.quick else SWEEP_FRACTIONS
    for name, next_request in operations.items():
        for warm_up in (lambda: bare, next_request):
            await closed_loop(warm_up, concurrency=args.connections, seconds=args.warm_up)
        result.framework_runs[name] = timed(
            "bare endpoint",
            await closed_loop(lambda: bare, concurrency=args.connections, seconds=args.seconds),
        )
        maximum = timed(
            f"{name} closed loop",
            await closed_loop(next_request, concurrency=args.connections, seconds=args.seconds),
        )
        result.maximum[name] = maximum
        rates = [fraction * maximum.achieved_rate for fraction in fractions]
        if name == MIXED and not args.quick:
            rates = sorted({*rates, MIXED_TARGET_RATE})
        sweep: list[RunResult] = []
        for rate in rates:
            run = await open_loop(
                next_request,
                rate=max(rate, 1.0),
                seconds=args.seconds,
                connections=args.connections,
                rng=rng,
            )
            sweep.append(timed(f"{name} open loop at {rate:,.0f}/s", run))
        result.sweeps[name] = sweep


async def measure(
    args: argparse.Namespace, system: RunningSystem, out: Path, command: str
) -> report.Report:
    rng = random.Random(args.seed)
    graph = build_graph(args)
    settings = {
        "graph": f"{graph.name}: {graph.users:,} users, {graph.follow_count:,} follows",
        "servers": f"every service and the bare app: Gunicorn + Uvicorn workers, "
        f"WEB_CONCURRENCY={args.workers}, LOG_LEVEL=WARNING; embedded PostgreSQL and Valkey",
        "load": f"{args.seconds:g} s per run, {args.connections} connections per service",
    }
    result = report.Report(command=command, graph=graph.name, settings=settings)
    assert system.redis is not None  # noqa: S101 - the harness runs on the embedded servers
    assert system.signing_key_file is not None  # noqa: S101
    redis = Redis(host=system.redis.host, port=system.redis.port, decode_responses=True)
    databases = [name for spec in system.services for name in spec.databases]
    try:
        requests = 20_000 if args.quick else 200_000
        result.storage += ceilings.redis_ceilings(system.redis, requests)
        if system.postgres_admin_url is not None:
            await ensure_database(system.postgres_admin_url, "terrascale_pgbench")
            result.storage.append(
                ceilings.postgres_ceiling(
                    system.postgres_admin_url,
                    "terrascale_pgbench",
                    seconds=3 if args.quick else 10,
                    scale=1 if args.quick else 10,
                )
            )

        endpoints = Endpoints(
            user=system.base_url("user-service"),
            post=system.base_url("post-service"),
            timeline=system.base_url("timeline-service"),
        )
        issuer = token_issuer(system.signing_key_file.read_text())
        population, timings = await seed(
            graph,
            endpoints=endpoints,
            graph_service=system.base_url("graph-service"),
            issuer=issuer,
            redis=redis,
            postgres=system.postgres_admin_url,
            databases=databases,
            posts_per_user=args.posts_per_user,
            concurrency=args.seed_concurrency,
            rng=rng,
        )
        result.seeding = {
            f"sign up {graph.users:,} users": timings.users_seconds,
            f"import {graph.follow_count:,} follows": timings.follows_seconds,
            f"write {graph.users * args.posts_per_user:,} posts": timings.posts_seconds,
            "events settle (fan-out, projections, notifications)": timings.settle_seconds,
            "first read of every home timeline": timings.activate_seconds,
        }

        workload = Workload(population, endpoints, rng)
        operations = {
            HOME: workload.next_request(HOME),
            USER: workload.next_request(USER),
            COMPOSE: workload.next_request(COMPOSE),
            MIXED: workload.next_request(MIXED),
            PROFILE: profile_requests(population, endpoints.user, rng),
        }
        bare_env = {"WEB_CONCURRENCY": str(args.workers), "LOG_LEVEL": "WARNING"}
        with (
            (out / "bare.log").open("wb") as bare_log,
            ceilings.bare_server(args.port_base + 10, bare_env, bare_log) as bare_url,
        ):
            await measure_operations(args, operations, bare_url, result, rng)

        home_maximum = result.maximum[HOME].achieved_rate
        if args.overload:
            result.extra |= await overload.overload(
                system,
                operations[HOME],
                service="timeline-service",
                maximum_rate=home_maximum,
                seconds=args.seconds,
                connections=args.overload_connections,
                rng=rng,
            )
        if args.soak_seconds > 0:
            result.extra |= await overload.soak(
                system,
                operations[HOME],
                service="timeline-service",
                rate=SOAK_FRACTION * home_maximum,
                seconds=args.soak_seconds,
                window_seconds=SOAK_WINDOW_SECONDS,
                connections=args.connections,
                rng=rng,
            )

        await wait_until_settled(redis, system.postgres_admin_url, databases)
        if args.fanout_followers > 0:
            result.extra |= await fanout(
                system,
                redis=redis,
                issuer=issuer,
                followers=args.fanout_followers,
                concurrency=args.seed_concurrency,
                databases=databases,
            )
        result.extra |= await timeline_memory(redis, keys=20 if args.quick else 200)
    finally:
        await redis.aclose()
    result.targets = targets(result)
    return result


def targets(result: report.Report) -> list[report.Target]:
    found: list[report.Target] = []

    def ratio_target(operation: str, what: str, goal: float) -> None:
        run = result.maximum.get(operation)
        framework = result.framework_rate(operation)
        if run is None or not framework:
            found.append(report.Target(what, f">= {goal:.0%} of framework", "-", None))
            return
        ratio = run.achieved_rate / framework
        found.append(
            report.Target(
                what,
                f">= {goal:.0%} of framework",
                f"{ratio:.1%} ({run.achieved_rate:,.0f}/s)",
                ratio >= goal,
            )
        )

    ratio_target(HOME, "GET /timelines/home, max throughput", 0.30)
    ratio_target(PROFILE, "cached GET /users/{id}, max throughput", 0.60)
    mixed = [run for run in result.sweeps.get(MIXED, []) if run.offered_rate == MIXED_TARGET_RATE]
    if mixed:
        run = mixed[0]
        p99 = run.overall().percentile_ms(99)
        found.append(
            report.Target(
                "mixed workload at 1,500 req/s",
                "p99 <= 50 ms, no errors",
                f"achieved {run.achieved_rate:,.0f}/s, p99 {p99:,.1f} ms, errors {run.errors}",
                p99 <= 50 and run.errors == 0 and run.achieved_rate >= 0.95 * MIXED_TARGET_RATE,  # noqa: PLR2004
            )
        )
    maximum = result.maximum.get(HOME)
    halves = [
        run
        for run in result.sweeps.get(HOME, [])
        if maximum and run.offered_rate == max(0.5 * maximum.achieved_rate, 1.0)
    ]
    if halves:
        half = halves[0]
        p99 = half.overall().percentile_ms(99)
        found.append(
            report.Target(
                "GET /timelines/home p99 at 50% of its max",
                "<= 20 ms",
                f"{p99:,.1f} ms at {half.offered_rate:,.0f}/s",
                p99 <= 20,  # noqa: PLR2004
            )
        )
    return found


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    command = "terrascale-bench " + shlex.join(sys.argv[1:] if argv is None else argv)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    out = args.out / f"{stamp}-{report.revision(ceilings.REPO)}"
    out.mkdir(parents=True, exist_ok=True)
    data_dir = Path(tempfile.mkdtemp(prefix="terrascale-bench-"))
    extra_env = {
        "LOG_LEVEL": "WARNING",
        "LOG_FORMAT": "json",
        "WEB_CONCURRENCY": str(args.workers),
        # The harness is every user at once, from one address: per-user and per-IP limits
        # would measure themselves.
        "RATE_LIMIT_WRITES_PER_MINUTE": "0",
        "RATE_LIMIT_SIGNIN_PER_MINUTE": "0",
    }
    if args.fanout_followers > 10_000:  # noqa: PLR2004 - the default celebrity threshold
        extra_env["CELEBRITY_FOLLOWER_THRESHOLD"] = str(args.fanout_followers)
    say(f"results go to {out}")
    try:
        with (
            (out / "services.log").open("wb") as log,
            running_system(
                data_dir=data_dir, port_base=args.port_base, extra_env=extra_env, output=log
            ) as system,
        ):
            result = uvloop.run(measure(args, system, out, command))
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)
    plots = report.plot(result, out)
    text = report.markdown(result, plots, ceilings.REPO)
    (out / "report.md").write_text(text)
    (out / "results.json").write_text(report.raw(result))
    print(text)
    say(f"written to {out}")
    silent = [name for name, run in result.maximum.items() if run.completed == 0]
    if silent:
        say(f"no request of {', '.join(silent)} succeeded: the harness or the system is broken")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
