"""Properties of ``next_id(shard)``, the SQL function every service's first migration creates
(ADR 0002), against real PostgreSQL: ids decode to the shard asked for and the time they were
minted, one caller's ids follow the clock, and concurrent callers (connections, asyncio tasks,
threads) never receive the same id.

Each id costs a round trip here, as it does in an INSERT, so minting stays far below the
documented limit of 1,024 ids per millisecond per database. Within one millisecond the ADR
promises no order (the 10-bit sequence wraps), so "monotonic" is stated as: the time field never
goes back, and the id grows whenever the millisecond does.
"""

from __future__ import annotations

import asyncio
import itertools
import threading
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import text
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

from terrascale.common.ids import MAX_SHARD, decode_id

shards = st.integers(min_value=0, max_value=MAX_SHARD)
MINT = text("SELECT next_id(:shard)")


async def _mint(engine: AsyncEngine, shard_plan: list[int]) -> list[int]:
    """Ids minted one statement at a time on one connection, for the shards in order."""
    async with engine.connect() as connection:
        return [(await connection.scalar(MINT, {"shard": shard})) for shard in shard_plan]


def _assert_follows_the_clock(minted: list[int]) -> None:
    times = [decode_id(value).created_at for value in minted]
    assert times == sorted(times)
    for earlier, later in itertools.pairwise(minted):
        if decode_id(later).created_at > decode_id(earlier).created_at:
            assert later > earlier


@settings(max_examples=40)
@given(shard=shards)
async def test_an_id_decodes_to_its_shard_and_the_moment_it_was_minted(
    database_url: URL, shard: int
) -> None:
    engine = create_async_engine(database_url, poolclass=NullPool)
    try:
        async with engine.connect() as connection:
            row = (
                await connection.execute(
                    text("SELECT clock_timestamp(), next_id(:shard), clock_timestamp()"),
                    {"shard": shard},
                )
            ).one()
    finally:
        await engine.dispose()
    before, minted, after = row
    parts = decode_id(minted)
    assert parts.shard == shard
    # The id keeps whole milliseconds: it may read up to 1 ms before the first clock reading.
    assert before - timedelta(milliseconds=1) < parts.created_at <= after
    assert abs(parts.created_at - datetime.now(UTC)) < timedelta(seconds=5)


@settings(max_examples=15)
@given(shard_plan=st.lists(shards, min_size=2, max_size=60))
async def test_one_callers_ids_follow_the_clock_and_never_repeat(
    database_url: URL, shard_plan: list[int]
) -> None:
    engine = create_async_engine(database_url, poolclass=NullPool)
    try:
        minted = await _mint(engine, shard_plan)
    finally:
        await engine.dispose()
    assert len(set(minted)) == len(minted)
    assert [decode_id(value).shard for value in minted] == shard_plan
    _assert_follows_the_clock(minted)
    for shard in set(shard_plan):
        _assert_follows_the_clock(
            [v for v, s in zip(minted, shard_plan, strict=True) if s == shard]
        )


@settings(max_examples=12)
@given(plans=st.lists(st.lists(shards, min_size=1, max_size=40), min_size=2, max_size=8))
async def test_concurrent_tasks_on_many_connections_never_share_an_id(
    database_url: URL, plans: list[list[int]]
) -> None:
    engine = create_async_engine(database_url, poolclass=NullPool)
    try:
        per_task = await asyncio.gather(*(_mint(engine, plan) for plan in plans))
    finally:
        await engine.dispose()
    everything = [value for minted in per_task for value in minted]
    assert len(set(everything)) == len(everything)
    for minted, plan in zip(per_task, plans, strict=True):
        assert [decode_id(value).shard for value in minted] == plan
        _assert_follows_the_clock(minted)


@settings(max_examples=8)
@given(
    plans=st.lists(st.lists(shards, min_size=1, max_size=40), min_size=2, max_size=6),
)
def test_concurrent_threads_with_their_own_event_loops_never_share_an_id(
    database_url: URL, plans: list[list[int]]
) -> None:
    """As Gunicorn workers or replicas would: separate loops, separate connections."""
    results: dict[int, list[int]] = {}
    start = threading.Barrier(len(plans))

    def worker(index: int, plan: list[int]) -> None:
        async def run() -> list[int]:
            engine = create_async_engine(database_url, poolclass=NullPool)
            try:
                async with engine.connect() as connection:
                    await connection.execute(text("SELECT 1"))  # connected before the race
                    start.wait()
                    return [(await connection.scalar(MINT, {"shard": shard})) for shard in plan]
            finally:
                await engine.dispose()

        results[index] = asyncio.run(run())

    threads = [
        threading.Thread(target=worker, args=(index, plan)) for index, plan in enumerate(plans)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(results) == list(range(len(plans)))
    everything = [value for minted in results.values() for value in minted]
    assert len(set(everything)) == len(everything)
    for index, plan in enumerate(plans):
        assert [decode_id(value).shard for value in results[index]] == plan
        _assert_follows_the_clock(results[index])
