"""Alembic is the only way the schema is made: it must go up, down and up again, and agree
with the models."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from alembic import command
from sqlalchemy import text
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from terrascale.common.ids import decode_id
from terrascale.common.migrations import alembic_config
from terrascale.common.testing.helpers import list_tables, schema_differences
from terrascale.common.testing.plugin import ServerAddresses, fresh_database
from terrascale.users.cli import SCRIPT_LOCATION
from terrascale.users.models import Base


def test_upgrade_downgrade_upgrade(test_servers: ServerAddresses) -> None:
    with fresh_database(test_servers.postgres, prefix="test_migrations") as url:
        config = alembic_config(script_location=SCRIPT_LOCATION, database_url=url)
        command.upgrade(config, "head")
        assert asyncio.run(list_tables(url)) == {
            "alembic_version",
            "user_account",
            "refresh_token",
            "outbox_event",
            "processed_event",
        }
        command.downgrade(config, "base")
        assert asyncio.run(list_tables(url)) == {"alembic_version"}
        command.upgrade(config, "head")
        assert "user_account" in asyncio.run(list_tables(url))


async def test_models_match_the_migrated_schema(database_url: URL) -> None:
    assert await schema_differences(database_url, Base.metadata) == []


async def test_database_mints_ids_in_the_shared_layout(database_url: URL) -> None:
    """Any 1,024 consecutive ids of one database differ in their sequence bits, so ids are
    unique as long as a database mints at most 1,024 per millisecond (the documented limit)."""
    engine = create_async_engine(database_url, poolclass=NullPool)
    try:
        async with engine.connect() as connection:
            minted = await connection.execute(
                text("SELECT next_id(4321) FROM generate_series(1, 1024)")
            )
            ids = minted.scalars().all()
    finally:
        await engine.dispose()
    assert len(set(ids)) == len(ids) == 1024
    for value in (ids[0], ids[-1]):
        parts = decode_id(value)
        assert parts.shard == 4321
        assert abs(parts.created_at - datetime.now(UTC)) < timedelta(seconds=30)
