"""Alembic is the only way the schema is made: it must go up, down and up again, agree with the
models, and give the fan-out and rebuild queries the index range scans they are written for."""

from __future__ import annotations

import asyncio

from alembic import command
from sqlalchemy import text
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from terrascale.common.migrations import alembic_config
from terrascale.common.testing.helpers import list_tables, schema_differences
from terrascale.common.testing.plugin import ServerAddresses, fresh_database
from terrascale.timelines.cli import SCRIPT_LOCATION
from terrascale.timelines.models import Base

TABLES = {"alembic_version", "follow_edge", "known_post"}


def test_upgrade_downgrade_upgrade(test_servers: ServerAddresses) -> None:
    with fresh_database(test_servers.postgres, prefix="test_timelines_migrations") as url:
        config = alembic_config(script_location=SCRIPT_LOCATION, database_url=url)
        command.upgrade(config, "head")
        assert asyncio.run(list_tables(url)) == TABLES
        command.downgrade(config, "base")
        assert asyncio.run(list_tables(url)) == {"alembic_version"}
        command.upgrade(config, "head")
        assert asyncio.run(list_tables(url)) == TABLES


async def test_models_match_the_migrated_schema(database_url: URL) -> None:
    assert await schema_differences(database_url, Base.metadata) == []


async def test_rebuild_reads_each_followee_through_its_index(database_url: URL) -> None:
    """The rebuild's lateral subquery must be an index scan per followee, not a scan of every
    post (enable_seqscan off only makes the planner show what it can use)."""
    engine = create_async_engine(database_url, poolclass=NullPool)
    try:
        async with engine.connect() as connection:
            await connection.execute(text("SET enable_seqscan = off"))
            plan = "\n".join(
                row[0]
                for row in await connection.execute(
                    text(
                        "EXPLAIN SELECT p.post_id FROM follow_edge f CROSS JOIN LATERAL ("
                        " SELECT post_id FROM known_post WHERE author_id = f.followee_id"
                        " AND fanned_out AND NOT deleted ORDER BY post_id DESC LIMIT 800) p"
                        " WHERE f.follower_id = 1 ORDER BY p.post_id DESC LIMIT 800"
                    )
                )
            )
    finally:
        await engine.dispose()
    assert "ix_known_post_fanned_out" in plan
    assert "pk_follow_edge" in plan
