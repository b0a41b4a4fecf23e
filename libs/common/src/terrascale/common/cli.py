"""The command line every service ships: migrate, downgrade, serve, and start (migrate + serve)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from typing import TypeVar

from alembic import command
from alembic.config import Config
from starlette.types import ASGIApp

from terrascale.common.logging import configure_logging
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
    argv: Sequence[str] | None = None,
) -> int:
    parser = argparse.ArgumentParser(prog=prog)
    commands = parser.add_subparsers(dest="command", required=True)
    migrate = commands.add_parser("migrate", help="apply migrations (default: up to head)")
    migrate.add_argument("revision", nargs="?", default="head")
    downgrade = commands.add_parser("downgrade", help="revert migrations down to a revision")
    downgrade.add_argument("revision")
    commands.add_parser("serve", help="run the HTTP server (Gunicorn with Uvicorn workers)")
    commands.add_parser("start", help="migrate to head, then serve: the container entrypoint")
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
    if args.command in ("serve", "start"):
        if prepare_to_serve is not None:
            settings = prepare_to_serve(settings)
        ready = settings
        serve(ready, lambda: create_app(ready))
    return 0
