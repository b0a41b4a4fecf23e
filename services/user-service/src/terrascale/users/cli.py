"""``terrascale-users``: migrate, serve, or start (both) the User Service."""

from __future__ import annotations

from collections.abc import Sequence

from alembic.config import Config

from terrascale.common.cli import run_service_cli
from terrascale.common.migrations import alembic_config as build_alembic_config
from terrascale.users.app import create_app, with_signing_key
from terrascale.users.config import UserSettings, get_settings

SCRIPT_LOCATION = "terrascale.users:migrations"


def alembic_config(settings: UserSettings) -> Config:
    return build_alembic_config(
        script_location=SCRIPT_LOCATION, database_url=settings.sqlalchemy_url
    )


def main(argv: Sequence[str] | None = None) -> int:
    return run_service_cli(
        prog="terrascale-users",
        load_settings=get_settings,
        # Before Gunicorn forks, so that every worker signs with the same key.
        prepare_to_serve=with_signing_key,
        create_app=create_app,
        alembic_config=alembic_config,
        argv=argv,
    )
