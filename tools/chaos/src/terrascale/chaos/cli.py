"""``terrascale-chaos``: faults injected into the whole system under load, then an oracle.

    python3 dev.py chaos            # every fault, about 6 minutes
    python3 dev.py chaos --quick    # every fault with a small load, under 4 minutes

One run starts the system as ``terrascale up`` does (embedded PostgreSQL and Valkey in a
temporary folder, services on ports 5200-5204, workers 5210-5214), seeds a small graph through
the API, starts writers (unique texts with mentions, one Idempotency-Key per post, retried until
acknowledged) and home-timeline readers, then injects each fault in turn mid-load and heals it.
When every event has settled, the oracle compares what the clients were told with the post and
notification databases and with every user's home timeline. The table, the services' log and
``results.json`` go to ``bench/results/<time>-<revision>-chaos/``. Exit status 1 if anything
acknowledged was lost, anything was duplicated, or the system did not recover.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

import orjson
from redis.asyncio import Redis

from terrascale.bench import ceilings
from terrascale.bench import report as bench_report
from terrascale.bench.seed import seed, wait_until_settled
from terrascale.bench.workload import Endpoints, Workload, token_issuer
from terrascale.chaos import evidence, faults, report
from terrascale.chaos.oracle import (
    Verdict,
    first_acknowledgement_after,
    judge,
    outage_seconds,
)
from terrascale.chaos.workload import Clients, Ledger, followers_of, small_graph
from terrascale.common.events import EventSettings
from terrascale.launcher.cli import DURABLE_VALKEY, RunningSystem, running_system
from terrascale.timelines.config import TimelineSettings

EVENT_KEY_PREFIX = EventSettings.model_fields["event_key_prefix"].default
TIMELINE_CAP = TimelineSettings.model_fields["timeline_max_posts"].default
CELEBRITY_THRESHOLD = TimelineSettings.model_fields["celebrity_follower_threshold"].default
RESULTS = ceilings.REPO / "bench" / "results"
# Valkey's own defaults: RDB snapshots now and then, no append-only file (to show the loss).
SNAPSHOT_VALKEY = {"appendonly": "no"}


def say(message: str) -> None:
    print(f"chaos: {message}", flush=True)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="terrascale-chaos",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--users", type=int, default=50)
    parser.add_argument("--follows", type=int, default=10, help="followees per user")
    parser.add_argument("--writers", type=int, default=4)
    parser.add_argument("--readers", type=int, default=2)
    parser.add_argument("--rate", type=float, default=8.0, help="posts/s, all writers together")
    parser.add_argument("--read-rate", type=float, default=10.0, help="home reads/s")
    parser.add_argument("--before", type=float, default=10.0, help="load before each fault (s)")
    parser.add_argument("--down", type=float, default=5.0, help="how long a server stays down")
    parser.add_argument("--after", type=float, default=10.0, help="load after each heal (s)")
    parser.add_argument(
        "--catch-up-wait", type=float, default=60.0, help="longest wait for events after a heal"
    )
    parser.add_argument(
        "--claim-idle",
        type=float,
        help="EVENT_CLAIM_IDLE_SECONDS of the system (default: the services' own, 30)",
    )
    parser.add_argument(
        "--redis-persistence",
        choices=["aof-always", "snapshots"],
        default="aof-always",
        help="the embedded Valkey's persistence: the launcher's (default) or Valkey's own "
        "defaults, which lose events when it is killed",
    )
    parser.add_argument("--fault", action="append", help="only faults whose name contains this")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--port-base", type=int, default=5200)
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument(
        "--quick", action="store_true", help="40 users, 3 s phases, 5 s claim idle time"
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.users, args.follows, args.rate = 40, 8, 6.0
        args.before, args.down, args.after, args.catch_up_wait = 3.0, 2.0, 3.0, 30.0
        if args.claim_idle is None:
            args.claim_idle = 5.0
    return args


@dataclass(frozen=True, slots=True)
class Phase:
    fault: str
    note: str
    injected: float
    healed: float
    ended: float
    caught_up_seconds: float | None


async def run(args: argparse.Namespace, system: RunningSystem) -> tuple[list[report.Row], Ledger]:
    rng = random.Random(args.seed)
    graph = small_graph(args.users, args.follows, rng)
    if max(graph.follower_counts()) > CELEBRITY_THRESHOLD:
        raise SystemExit("chaos: the graph has celebrities; their posts are not fanned out")
    assert system.redis is not None  # noqa: S101 - the harness runs on the embedded servers
    assert system.signing_key_file is not None  # noqa: S101
    assert system.postgres_admin_url is not None  # noqa: S101
    admin_url = system.postgres_admin_url
    databases = [name for spec in system.services for name in spec.databases]
    redis = Redis(host=system.redis.host, port=system.redis.port)
    endpoints = Endpoints(
        user=system.base_url("user-service"),
        post=system.base_url("post-service"),
        timeline=system.base_url("timeline-service"),
    )
    try:
        population, _ = await seed(
            graph,
            endpoints=endpoints,
            graph_service=system.base_url("graph-service"),
            issuer=token_issuer(system.signing_key_file.read_text()),
            redis=redis,
            postgres=admin_url,
            databases=databases,
            posts_per_user=0,
            concurrency=8,
            rng=rng,
        )
        ledger = Ledger(run_tag=f"{rng.randrange(36**4):04x}")
        workload = Workload(population, endpoints, rng)
        clients = Clients(
            ledger=ledger,
            graph=graph,
            population=population,
            workload=workload,
            post_service=endpoints.post,
            writers=args.writers,
            readers=args.readers,
            rate=args.rate,
            read_rate=args.read_rate,
            rng=rng,
        )
        context = faults.FaultContext(
            system, redis, EVENT_KEY_PREFIX, args.down, rng, lambda: ledger.writes_in_flight
        )
        phases: list[Phase] = []
        clients.start()
        for fault in (faults.BASELINE, *faults.select(args.fault)):
            ledger.phase = fault.name
            await asyncio.sleep(args.before)
            injected = time.monotonic()
            note = await fault.inject(context)
            await fault.heal(context)
            healed = time.monotonic()
            say(f"{fault.name}: {note}; healed after {healed - injected:.1f} s")
            caught_up = asyncio.create_task(
                faults.caught_up_after(redis, EVENT_KEY_PREFIX, healed, within=args.catch_up_wait)
            )
            await asyncio.sleep(args.after)
            caught = await caught_up
            phases.append(Phase(fault.name, note, injected, healed, time.monotonic(), caught))
        say("load stopped; posts in hand retry for up to 30 s")
        await clients.stop(retry_for=30)
        started = time.monotonic()
        await wait_until_settled(redis, admin_url, databases, within=600)
        say(f"events settled {time.monotonic() - started:.1f} s later; asking the oracle")

        stored = await evidence.stored_posts(
            [admin_url.set(database=name) for name in system.spec("post-service").databases],
            ledger.run_tag,
        )
        notifications = await evidence.mention_notifications(
            admin_url.set(database=system.spec("notification-service").database),
            list(population.ids),
        )
        timelines = await evidence.home_timelines(endpoints.timeline, population)
        verdicts = judge(
            ledger.posts,
            stored=stored,
            followers=followers_of(graph, population.ids),
            timelines=timelines,
            mention_notifications=notifications,
            timeline_cap=TIMELINE_CAP,
        )
    finally:
        await redis.aclose()
    rows = [
        report.Row(
            fault=phase.fault,
            verdict=verdicts.get(phase.fault, Verdict()),
            writes_failed_seconds=outage_seconds(ledger.attempts, phase.injected, phase.ended),
            recovery_seconds=first_acknowledgement_after(ledger.attempts, phase.healed),
            caught_up_seconds=phase.caught_up_seconds,
            reads=(
                ledger.reads.get(phase.fault, [0, 0])[0],
                ledger.reads.get(phase.fault, [0, 0])[1],
            ),
        )
        for phase in phases
    ]
    for phase in phases:
        say(f"  {phase.fault}: {phase.note}")
    return rows, ledger


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    command = "terrascale-chaos " + " ".join(sys.argv[1:] if argv is None else argv)
    revision = bench_report.revision(ceilings.REPO)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    out = args.out / f"{stamp}-{revision}-chaos"
    out.mkdir(parents=True, exist_ok=True)
    data_dir = Path(tempfile.mkdtemp(prefix="terrascale-chaos-"))
    extra_env = {"LOG_LEVEL": "WARNING", "LOG_FORMAT": "json"}
    if args.claim_idle is not None:
        extra_env["EVENT_CLAIM_IDLE_SECONDS"] = str(args.claim_idle)
    valkey = DURABLE_VALKEY if args.redis_persistence == "aof-always" else SNAPSHOT_VALKEY
    say(f"the services' log and the results go to {out}")
    started = time.monotonic()
    try:
        with (
            (out / "services.log").open("wb") as log,
            running_system(
                data_dir=data_dir,
                port_base=args.port_base,
                extra_env=extra_env,
                output=log,
                valkey_config=valkey,
            ) as system,
        ):
            rows, ledger = asyncio.run(run(args, system))
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)
    took = time.monotonic() - started
    table = report.markdown_table(rows)
    details = report.breakdown(rows)
    problems = report.failures(rows) + ledger.unexpected
    text = "\n".join(
        [
            f"`{command}` at {revision}, {took:.0f} s, Redis persistence {args.redis_persistence}",
            "",
            table,
            "",
            *details,
        ]
    )
    (out / "report.md").write_text(text + "\n")
    results = {
        "command": command,
        "revision": revision,
        "seconds": took,
        "rows": [asdict(row) | {"lost": row.verdict.lost} for row in rows],
        "problems": problems,
    }
    (out / "results.json").write_bytes(orjson.dumps(results, option=orjson.OPT_INDENT_2))
    print(text, flush=True)
    if problems:
        say("FAILED: " + "; ".join(problems[:20]))
        return 1
    say(f"every promise held ({took:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
