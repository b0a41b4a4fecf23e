"""``terrascale-regions``: two regions on this machine (``up``), or their figures (``figures``).

``up`` starts each region as ``terrascale up`` starts the single one (its own embedded
PostgreSQL and Valkey under ``--data-dir``/<region>, every service and worker as a process),
region ``eu`` on ports 5300-5314 and ``us`` on 5320-5334, plus the two replicators in this
process. Both regions share one signing key, so a token is good in either. Ctrl-C stops it all.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import threading
from collections.abc import Sequence
from contextlib import ExitStack
from pathlib import Path

from terrascale.common.events import load_event_settings
from terrascale.common.logging import configure_logging
from terrascale.launcher.cli import (
    ConfiguredServers,
    RunningSystem,
    development_signing_keys,
    running_system,
    say,
    supervise,
)
from terrascale.regions.figures import MAX_OUTAGE_POSTS, run_figures
from terrascale.regions.local import DEMO_REGIONS
from terrascale.regions.replicator import RegionBus, Replicator

PORT_BASES = {"eu": 5300, "us": 5320}


class ReplicatorThread:
    """Both replicators on an event loop of their own, beside the launcher's supervision."""

    def __init__(self, replicators: Sequence[Replicator]) -> None:
        self.replicators = replicators
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)

    async def _main(self) -> None:
        self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
        self._ready.set()
        await asyncio.gather(*(item.run_until(self._stop) for item in self.replicators))

    def start(self) -> None:
        self._thread.start()
        self._ready.wait()

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout=30)


def up(*, data_dir: Path, regions: str) -> int:
    configured = ConfiguredServers()
    if configured.postgres_host or configured.database_url or configured.redis_host:
        raise SystemExit(
            "terrascale-regions: each region needs servers of its own; unset POSTGRES_HOST, "
            "DATABASE_URL and REDIS_HOST (the regions start embedded ones)"
        )
    # One key for both regions, set before the launcher reads its configuration.
    os.environ.update(development_signing_keys(data_dir / "jwt" / "signing-key.pem"))
    configure_logging(level="INFO", renderer="console")
    with ExitStack() as stack:
        systems: dict[str, RunningSystem] = {}
        for name, port_base in PORT_BASES.items():
            say(f"region {name}: ports {port_base}-{port_base + 14}")
            systems[name] = stack.enter_context(
                running_system(
                    data_dir=data_dir / name,
                    port_base=port_base,
                    extra_env={"REGION": name, "REGIONS": regions},
                )
            )
        events = load_event_settings()
        buses = {}
        for name, system in systems.items():
            assert system.redis is not None  # noqa: S101 - embedded, checked above
            buses[name] = RegionBus(name=name, redis_url=system.redis.url, events=events)
        eu, us = buses["eu"], buses["us"]
        replicators = ReplicatorThread(
            [Replicator(source=eu, target=us), Replicator(source=us, target=eu)]
        )
        replicators.start()
        stack.callback(replicators.stop)
        for name, system in systems.items():
            say(
                f"region {name} is up: users {system.base_url('user-service')}, "
                f"timelines {system.base_url('timeline-service')}"
            )
        say("replicating eu <-> us; press Ctrl-C to stop everything")
        processes = [
            (f"{name} {spec.name}", process)
            for name, system in systems.items()
            for spec, process in system.processes
        ]
        code = supervise(processes)
    say("stopped")
    return code


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="terrascale-regions", description=__doc__)
    commands = parser.add_subparsers(dest="command")
    start = commands.add_parser("up", help="start both regions and the replicators (default)")
    start.add_argument(
        "--data-dir", type=Path, default=Path(".data/regions"), help="embedded servers' data"
    )
    figures = commands.add_parser("figures", help="measure lag, delay and outage catch-up")
    figures.add_argument("--posts", type=int, default=30, help="posts timed one by one")
    figures.add_argument("--outages", type=int, default=3, help="outages of region eu")
    figures.add_argument("--outage-posts", type=int, default=40, help="posts made in us per outage")
    figures.add_argument(
        "--postgres",
        default=os.environ.get("TEST_DATABASE_URL"),
        help="admin URL; default: embedded",
    )
    figures.add_argument(
        "--redis", default=os.environ.get("TEST_REDIS_URL"), help="us's Redis (default: embedded)"
    )
    args = parser.parse_args(argv)
    if args.command == "figures":
        if not 1 <= args.outage_posts <= MAX_OUTAGE_POSTS:
            parser.error(f"--outage-posts goes from 1 to {MAX_OUTAGE_POSTS}")
        result = run_figures(
            postgres_url=args.postgres,
            redis_url=args.redis,
            posts=args.posts,
            outages=args.outages,
            outage_posts=args.outage_posts,
        )
        print(result.table())
        return 0
    data_dir = getattr(args, "data_dir", Path(".data/regions"))
    return up(data_dir=data_dir.resolve(), regions=DEMO_REGIONS)


if __name__ == "__main__":
    sys.exit(main())
