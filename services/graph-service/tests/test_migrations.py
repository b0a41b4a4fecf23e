"""Alembic is the only way the schema is made: it must go up, down and up again, agree with the
models, and give each list query an index-only range scan."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from alembic import command
from sqlalchemy import event, text
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine
from sqlalchemy.pool import NullPool

from terrascale.common.migrations import alembic_config
from terrascale.common.testing.helpers import list_tables, schema_differences
from terrascale.common.testing.plugin import ServerAddresses, fresh_database
from terrascale.graph.cli import SCRIPT_LOCATION
from terrascale.graph.models import Base
from terrascale.graph.pagination import Position
from terrascale.graph.repository import FollowRepository

TABLES = {
    "alembic_version",
    "following_edge",
    "follower_edge",
    "follow_count",
    "known_user",
    "outbox_event",
    "processed_event",
    "shard_ownership",
}


def test_upgrade_downgrade_upgrade(test_servers: ServerAddresses) -> None:
    with fresh_database(test_servers.postgres, prefix="test_graph_migrations") as url:
        config = alembic_config(script_location=SCRIPT_LOCATION, database_url=url)
        command.upgrade(config, "head")
        assert asyncio.run(list_tables(url)) == TABLES
        command.downgrade(config, "0001")
        assert asyncio.run(list_tables(url)) == TABLES - {"shard_ownership"}
        command.downgrade(config, "base")
        assert asyncio.run(list_tables(url)) == {"alembic_version"}
        command.upgrade(config, "head")
        assert asyncio.run(list_tables(url)) == TABLES


async def test_models_match_the_migrated_schema(database_url: URL) -> None:
    assert await schema_differences(database_url, Base.metadata) == []


async def test_index_definitions_are_newest_first(database_url: URL) -> None:
    engine = create_async_engine(database_url, poolclass=NullPool)
    try:
        async with engine.connect() as connection:
            rows = await connection.execute(
                text(
                    "SELECT indexname, indexdef FROM pg_indexes "
                    "WHERE tablename IN ('following_edge', 'follower_edge')"
                )
            )
            definitions = {row.indexname: row.indexdef for row in rows}
    finally:
        await engine.dispose()
    assert definitions["ix_following_edge_recent"].endswith(
        "(follower_id, created_at DESC, followee_id DESC)"
    )
    assert definitions["ix_follower_edge_recent"].endswith(
        "(followee_id, created_at DESC, follower_id DESC)"
    )
    assert definitions["pk_following_edge"].endswith("(follower_id, followee_id)")
    assert definitions["pk_follower_edge"].endswith("(followee_id, follower_id)")


# --- the page queries' plans ---------------------------------------------------------------

OWNERS = 300
EDGES_PER_OWNER = 200
FILL = """
INSERT INTO {table} ({owner}, {other}, created_at)
SELECT owner, 1000000 + other, timestamptz '2026-06-01' + other * interval '1 second'
FROM generate_series(1, {owners}) AS owner, generate_series(1, {edges}) AS other
"""


def _plan_nodes(plan: dict[str, Any]) -> list[dict[str, Any]]:
    nodes = [plan]
    for child in plan.get("Plans", []):
        nodes.extend(_plan_nodes(child))
    return nodes


async def _explain_page_query(
    url: URL, run: Callable[[FollowRepository], Awaitable[list[Position]]]
) -> list[dict[str, Any]]:
    """EXPLAIN ANALYZE the statement the repository really sends, with its parameters."""
    engine = create_async_engine(url, poolclass=NullPool)
    sent: list[tuple[str, Any]] = []

    def capture(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        sent.append((statement, parameters))

    event.listen(engine.sync_engine, "before_cursor_execute", capture)
    try:
        async with AsyncSession(engine) as session:
            rows = await run(FollowRepository(session))
            assert len(rows) == 41
        event.remove(engine.sync_engine, "before_cursor_execute", capture)
        [(statement, parameters)] = sent
        async with engine.connect() as connection:
            result = await connection.exec_driver_sql(
                f"EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) {statement}", parameters
            )
            [[document]] = result.all()
    finally:
        await engine.dispose()
    return _plan_nodes(document[0]["Plan"])


async def _fill(url: URL) -> None:
    engine = create_async_engine(url, poolclass=NullPool, isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as connection:
            for table, owner, other in (
                ("following_edge", "follower_id", "followee_id"),
                ("follower_edge", "followee_id", "follower_id"),
            ):
                fill = FILL.format(
                    table=table, owner=owner, other=other, owners=OWNERS, edges=EDGES_PER_OWNER
                )
                await connection.execute(text(fill))
                # Sets the visibility map, so an index-only scan needs no heap visit.
                await connection.execute(text(f"VACUUM ANALYZE {table}"))
    finally:
        await engine.dispose()


@pytest.fixture
def filled_database(test_servers: ServerAddresses) -> Iterator[URL]:
    """A database of its own with 60,000 edges in each table, vacuumed and analysed."""
    with fresh_database(test_servers.postgres, prefix="test_graph_plans") as url:
        command.upgrade(alembic_config(script_location=SCRIPT_LOCATION, database_url=url), "head")
        asyncio.run(_fill(url))
        yield url


async def test_each_page_is_an_index_only_range_scan(filled_database: URL) -> None:
    middle = Position(datetime(2026, 6, 1, 0, 2, tzinfo=UTC), 1_000_120)
    cases: dict[str, list[Callable[[FollowRepository], Awaitable[list[Position]]]]] = {
        "ix_follower_edge_recent": [
            lambda repo: repo.followers_page(150, after=None, limit=41),
            lambda repo: repo.followers_page(150, after=middle, limit=41),
        ],
        "ix_following_edge_recent": [
            lambda repo: repo.following_page(150, after=None, limit=41),
            lambda repo: repo.following_page(150, after=middle, limit=41),
        ],
    }
    for index, runs in cases.items():
        for run in runs:
            nodes = await _explain_page_query(filled_database, run)
            [scan] = [node for node in nodes if "Scan" in node["Node Type"]]
            assert scan["Node Type"] == "Index Only Scan", nodes
            assert scan["Index Name"] == index
            assert scan["Heap Fetches"] == 0
            assert "Filter" not in scan  # the cursor bounds the range; no row is read and dropped
            assert scan["Actual Rows"] == 41  # reads the page and one row to peek, no more
            assert not any(node["Node Type"] == "Sort" for node in nodes)
