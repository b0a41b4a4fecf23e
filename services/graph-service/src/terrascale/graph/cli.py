"""``terrascale-graph``: migrate, serve, start (both), run the event worker, show the shard map
or move a shard of the Graph Service."""

from __future__ import annotations

from collections.abc import Sequence

from alembic.config import Config

from terrascale.common.cli import run_service_cli
from terrascale.common.migrations import alembic_config as build_alembic_config
from terrascale.graph.app import create_app, create_worker
from terrascale.graph.config import GraphSettings, get_settings
from terrascale.graph.models import SHARDED_TABLES

SCRIPT_LOCATION = "terrascale.graph:migrations"


def alembic_config(settings: GraphSettings) -> list[Config]:
    """One per shard database: every one has the whole schema."""
    return [
        build_alembic_config(script_location=SCRIPT_LOCATION, database_url=url)
        for url in settings.shard_database_urls
    ]


def main(argv: Sequence[str] | None = None) -> int:
    return run_service_cli(
        prog="terrascale-graph",
        load_settings=get_settings,
        create_app=create_app,
        alembic_config=alembic_config,
        create_worker=create_worker,
        sharded_tables=SHARDED_TABLES,
        argv=argv,
    )
