"""Alembic is the only way the schema is made: it must go up, down and up again, and agree with
the models."""

from __future__ import annotations

import asyncio

from alembic import command
from sqlalchemy.engine import URL

from terrascale.common.migrations import alembic_config
from terrascale.common.testing.helpers import list_tables, schema_differences
from terrascale.common.testing.plugin import ServerAddresses, fresh_database
from terrascale.notifications.cli import SCRIPT_LOCATION
from terrascale.notifications.models import Base

from .conftest import Sql

TABLES = {"alembic_version", "notification", "notification_state"}


def test_upgrade_downgrade_upgrade(test_servers: ServerAddresses) -> None:
    with fresh_database(test_servers.postgres, prefix="test_notifications_migrations") as url:
        config = alembic_config(script_location=SCRIPT_LOCATION, database_url=url)
        command.upgrade(config, "head")
        assert asyncio.run(list_tables(url)) == TABLES
        command.downgrade(config, "base")
        assert asyncio.run(list_tables(url)) == {"alembic_version"}
        command.upgrade(config, "head")
        assert asyncio.run(list_tables(url)) == TABLES


async def test_models_match_the_migrated_schema(database_url: URL) -> None:
    assert await schema_differences(database_url, Base.metadata) == []


async def test_constraints_guard_the_invariants(sql: Sql) -> None:
    [(definitions,)] = await sql(
        "SELECT string_agg(conname || ' ' || pg_get_constraintdef(oid), E'\\n' ORDER BY conname)"
        " FROM pg_constraint WHERE conrelid IN ('notification'::regclass,"
        " 'notification_state'::regclass)"
    )
    assert "pk_notification PRIMARY KEY (recipient_id, seq)" in definitions
    assert "uq_notification_fact UNIQUE (recipient_id, kind, actor_id, subject_id)" in definitions
    assert "pk_notification_state PRIMARY KEY (recipient_id)" in definitions
    assert "ck_notification_state_read_in_range" in definitions
    assert "ck_notification_known_kind" in definitions
