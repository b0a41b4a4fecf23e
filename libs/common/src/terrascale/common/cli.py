"""The command line every service ships: migrate, downgrade, serve, and start (migrate + serve)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
from collections.abc import Callable, Generator, Sequence
from typing import TypeVar

import uvicorn
from alembic import command
from alembic.config import Config
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool
from starlette.types import ASGIApp

from terrascale.common.logging import configure_logging
from terrascale.common.metrics import reset_multiprocess_dir
from terrascale.common.resharding import MoveError, ShardedTable, move_shard
from terrascale.common.server import serve
from terrascale.common.settings import ConfigError, ServiceSettings
from terrascale.common.sharding import (
    LOGICAL_SHARDS,
    ShardedServiceSettings,
    load_shard_map,
    seed_initial_placement,
)

SettingsT = TypeVar("SettingsT", bound=ServiceSettings)


def run_service_cli(
    *,
    prog: str,
    load_settings: Callable[[], SettingsT],
    create_app: Callable[[SettingsT], ASGIApp],
    alembic_config: Callable[[SettingsT], Config | Sequence[Config]],
    prepare_to_serve: Callable[[SettingsT], SettingsT] | None = None,
    create_worker: Callable[[SettingsT], FastAPI] | None = None,
    sharded_tables: Sequence[ShardedTable] = (),
    argv: Sequence[str] | None = None,
) -> int:
    """``alembic_config`` gives one configuration per database to migrate (a sharded service:
    every shard database). ``create_worker`` builds the app whose lifespan runs the service's
    event consumers; with it the CLI gains ``worker``, which runs that lifespan and serves only
    the operations endpoints (health, readiness, metrics) on PORT. With ``sharded_tables`` it
    gains ``shards`` (the shard map) and ``move-shard`` (an online move; ADR 0013)."""
    parser = argparse.ArgumentParser(prog=prog)
    commands = parser.add_subparsers(dest="command", required=True)
    migrate = commands.add_parser("migrate", help="apply migrations (default: up to head)")
    migrate.add_argument("revision", nargs="?", default="head")
    downgrade = commands.add_parser("downgrade", help="revert migrations down to a revision")
    downgrade.add_argument("revision")
    commands.add_parser("serve", help="run the HTTP server (Gunicorn with Uvicorn workers)")
    commands.add_parser("start", help="migrate to head, then serve: the container entrypoint")
    if create_worker is not None:
        commands.add_parser(
            "worker",
            help="consume events until SIGTERM or Ctrl-C; /health, /ready, /metrics on PORT",
        )
    if sharded_tables:
        commands.add_parser("shards", help="print the shard map: which database owns which shards")
        move = commands.add_parser(
            "move-shard", help="move one logical shard to another database while writes go on"
        )
        move.add_argument("shard", type=int, choices=range(LOGICAL_SHARDS), metavar="SHARD")
        move.add_argument("target", type=int, metavar="DATABASE", help="index in the map")
        move.add_argument(
            "--drain-seconds",
            type=float,
            default=None,
            help="wait before deleting the old copy (default: twice SHARD_MAP_REFRESH_SECONDS)",
        )
    args = parser.parse_args(argv)

    try:
        settings = load_settings()
    except ConfigError as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return 2
    configure_logging(level=settings.log_level, renderer=settings.log_renderer)

    configs = alembic_config(settings)
    configs = [configs] if isinstance(configs, Config) else list(configs)
    if args.command in ("migrate", "start"):
        for config in configs:
            command.upgrade(config, getattr(args, "revision", "head"))
    if args.command == "downgrade":
        for config in configs:
            command.downgrade(config, args.revision)
    if args.command in ("shards", "move-shard"):
        if not isinstance(settings, ShardedServiceSettings):
            raise TypeError("sharding commands need ShardedServiceSettings")
        return asyncio.run(run_sharding_command(args, settings, sharded_tables))
    if args.command == "worker" and create_worker is not None:
        reset_multiprocess_dir()
        asyncio.run(run_worker(create_worker(settings), host=settings.host, port=settings.port))
    if args.command in ("serve", "start"):
        if prepare_to_serve is not None:
            settings = prepare_to_serve(settings)
        ready = settings
        serve(ready, lambda: create_app(ready))
    return 0


class _WorkerServer(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None]:
        # Uvicorn would raise the stop signal again after shutting down, ending the process
        # with it; the worker handles its signals itself and exits 0 once drained.
        yield


async def run_worker(app: FastAPI, *, host: str, port: int) -> None:
    """Run ``app``'s lifespan (its background work) and serve its operations endpoints until
    SIGTERM or SIGINT; the work in hand is finished before the process exits."""
    config = uvicorn.Config(
        app, host=host, port=port, lifespan="on", log_config=None, access_log=False
    )
    server = _WorkerServer(config)

    def stop() -> None:
        server.should_exit = True

    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop)
    await server.serve()
    if not server.started:
        # Startup failed (the port is taken, or the lifespan raised): say so in the exit code.
        raise SystemExit(1)


async def run_sharding_command(
    args: argparse.Namespace,
    settings: ShardedServiceSettings,
    tables: Sequence[ShardedTable],
) -> int:
    urls = settings.shard_database_urls
    engines = [create_async_engine(url, poolclass=NullPool) for url in urls]
    try:
        await seed_initial_placement(engines)
        if args.command == "shards":
            shard_map = await load_shard_map(engines)
            for first, last, owner in shard_map.describe():
                where = f"{owner} ({urls[owner].database})" if owner >= 0 else "nobody"
                print(f"shards {first}-{last}: database {where}")
            return 0
        if not 0 <= args.target < len(engines):
            print(f"no database {args.target}: there are {len(engines)}", file=sys.stderr)
            return 2
        drain = args.drain_seconds
        try:
            report = await move_shard(
                shard=args.shard,
                engines=engines,
                target=args.target,
                tables=tables,
                drain_seconds=2 * settings.shard_map_refresh_seconds if drain is None else drain,
            )
        except MoveError as exc:
            print(f"move-shard: {exc}", file=sys.stderr)
            return 1
        print(report.to_text())
        return 0
    finally:
        for engine in engines:
            await engine.dispose()
