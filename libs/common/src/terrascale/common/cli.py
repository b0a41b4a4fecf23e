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
from starlette.types import ASGIApp

from terrascale.common.logging import configure_logging
from terrascale.common.metrics import reset_multiprocess_dir
from terrascale.common.server import serve
from terrascale.common.settings import ConfigError, ServiceSettings

SettingsT = TypeVar("SettingsT", bound=ServiceSettings)


def run_service_cli(
    *,
    prog: str,
    load_settings: Callable[[], SettingsT],
    create_app: Callable[[SettingsT], ASGIApp],
    alembic_config: Callable[[SettingsT], Config],
    prepare_to_serve: Callable[[SettingsT], SettingsT] | None = None,
    create_worker: Callable[[SettingsT], FastAPI] | None = None,
    argv: Sequence[str] | None = None,
) -> int:
    """``create_worker`` builds the app whose lifespan runs the service's event consumers; with
    it the CLI gains ``worker``, which runs that lifespan and serves only the operations
    endpoints (health, readiness, metrics) on PORT."""
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
    args = parser.parse_args(argv)

    try:
        settings = load_settings()
    except ConfigError as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return 2
    configure_logging(level=settings.log_level, renderer=settings.log_renderer)

    if args.command in ("migrate", "start"):
        command.upgrade(alembic_config(settings), getattr(args, "revision", "head"))
    if args.command == "downgrade":
        command.downgrade(alembic_config(settings), args.revision)
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
