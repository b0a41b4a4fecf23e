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
from terrascale.posts.cli import SCRIPT_LOCATION
from terrascale.posts.models import Base

TABLES = {
    "alembic_version",
    "post",
    "post_idempotency_key",
    "known_user",
    "outbox_event",
    "processed_event",
    "shard_ownership",
}


def test_upgrade_downgrade_upgrade(test_servers: ServerAddresses) -> None:
    with fresh_database(test_servers.postgres, prefix="test_post_migrations") as url:
        config = alembic_config(script_location=SCRIPT_LOCATION, database_url=url)
        command.upgrade(config, "head")
        assert asyncio.run(list_tables(url)) == TABLES
        command.downgrade(config, "0002")
        assert asyncio.run(list_tables(url)) == TABLES - {"shard_ownership"}
        command.downgrade(config, "0001")
        assert asyncio.run(list_tables(url)) == TABLES - {
            "outbox_event",
            "processed_event",
            "shard_ownership",
        }
        command.downgrade(config, "base")
        assert asyncio.run(list_tables(url)) == {"alembic_version"}
        command.upgrade(config, "head")
        assert asyncio.run(list_tables(url)) == TABLES


def test_the_metadata_holds_only_this_services_tables() -> None:
    assert set(Base.metadata.tables) == TABLES - {"alembic_version"}


async def test_models_match_the_migrated_schema(database_url: URL) -> None:
    assert await schema_differences(database_url, Base.metadata) == []


async def test_database_mints_ids_in_the_shared_layout(database_url: URL) -> None:
    engine = create_async_engine(database_url, poolclass=NullPool)
    try:
        async with engine.connect() as connection:
            minted = await connection.execute(
                text("SELECT next_id(8191) FROM generate_series(1, 1024)")
            )
            ids = minted.scalars().all()
    finally:
        await engine.dispose()
    assert len(set(ids)) == len(ids) == 1024
    for value in (ids[0], ids[-1]):
        parts = decode_id(value)
        assert parts.shard == 8191
        assert abs(parts.created_at - datetime.now(UTC)) < timedelta(seconds=30)


async def test_text_length_is_also_checked_by_the_database(database_url: URL) -> None:
    engine = create_async_engine(database_url, poolclass=NullPool)
    try:
        async with engine.connect() as connection:
            fits = await connection.scalar(
                text("SELECT char_length(:t) BETWEEN 1 AND 500"), {"t": "\U0001f600" * 500}
            )
            constraint = await connection.scalar(
                text(
                    "SELECT pg_get_constraintdef(oid) FROM pg_constraint "
                    "WHERE conname = 'ck_post_text_length'"
                )
            )
    finally:
        await engine.dispose()
    assert fits is True
    assert "char_length(text)" in constraint
