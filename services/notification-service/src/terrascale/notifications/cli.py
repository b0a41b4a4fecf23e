"""``terrascale-notifications``: migrate, serve, start (both) or run the event worker of the
Notification Service."""

from __future__ import annotations

from collections.abc import Sequence

from alembic.config import Config

from terrascale.common.cli import run_service_cli
from terrascale.common.migrations import alembic_config as build_alembic_config
from terrascale.notifications.app import create_app, create_worker
from terrascale.notifications.config import NotificationSettings, get_settings

SCRIPT_LOCATION = "terrascale.notifications:migrations"


def alembic_config(settings: NotificationSettings) -> Config:
    return build_alembic_config(
        script_location=SCRIPT_LOCATION, database_url=settings.sqlalchemy_url
    )


def main(argv: Sequence[str] | None = None) -> int:
    return run_service_cli(
        prog="terrascale-notifications",
        load_settings=get_settings,
        create_app=create_app,
        alembic_config=alembic_config,
        create_worker=create_worker,
        argv=argv,
    )
