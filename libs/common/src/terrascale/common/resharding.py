"""Moving one logical shard to another physical database while the service keeps writing.

1. **Copy** the shard's rows to the target, table by table, in batches.
2. **Catch up**: compare the two sides row by row (a digest per primary key) and copy what
   changed meanwhile; repeat while each round still finds many changes.
3. **Fence**: lock the shard's ownership row on the source. Writers of the shard hold a share
   lock on it for their whole transaction (``ShardedDatabases.writing``), so from here on none
   is in flight and new ones wait.
4. **Final copy and verify**: one more catch-up round, then row counts and an order-independent
   checksum of every table must match on both sides; otherwise the move is abandoned and the
   source keeps the shard.
5. **Switch**: the target records the shard with a higher epoch and the source forgets it.
   Waiting writers find the row gone, reload the map and write to the target.
6. **Clean up** after ``drain_seconds`` (longer than the services' map refresh, so no reader
   still looks at the source): the source's copy is deleted.

The switch spans two databases without two-phase commit: the source forgets the shard first,
so a crash in between leaves the shard owned by nobody (writes answer 503) rather than by two
(writes split between copies). Running the move again completes it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Column, ColumnElement, Table, select, text, tuple_
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from terrascale.common.logging import get_logger
from terrascale.common.sharding import (
    OWNERSHIP,
    OWNERSHIP_TABLE,
    UNOWNED,
    load_shard_map,
    logical_shard_sql,
    read_ownership,
)

logger = get_logger(__name__)

BATCH_ROWS = 1000
# Catch-up rounds stop once a round copies at most this many rows: the fenced round is short.
SETTLED_ROWS = 50
MAX_CATCH_UP_ROUNDS = 10
FENCE_LOCK_TIMEOUT = "5s"

Key = tuple[Any, ...]  # a row's primary key values


@dataclass(frozen=True, slots=True)
class ShardedTable:
    """A table whose rows belong to the shard of ``owner_column`` (an id minted on it)."""

    table: Table
    owner_column: str

    @property
    def name(self) -> str:
        return self.table.name

    @property
    def key_columns(self) -> list[str]:
        return [column.name for column in self.table.primary_key.columns]

    def where_shard(self) -> str:
        return f"{logical_shard_sql(self.owner_column)} = :shard"

    def order_by(self) -> str:
        return ", ".join(f'"{column}"' for column in self.key_columns)


class MoveError(Exception):
    """The move cannot start or was abandoned; the source still owns the shard."""


@dataclass(slots=True)
class TableReport:
    rows: int = 0
    checksum: str = ""
    copied: int = 0
    deleted: int = 0


@dataclass(slots=True)
class MoveReport:
    shard: int
    source: int
    target: int
    tables: dict[str, TableReport] = field(default_factory=dict)
    catch_up_rounds: int = 0
    fenced_seconds: float = 0.0  # how long the shard's writes waited
    total_seconds: float = 0.0
    cleaned: bool = False

    def to_text(self) -> str:
        lines = [
            f"shard {self.shard}: database {self.source} -> {self.target} in "
            f"{self.total_seconds:.2f} s; writes waited {self.fenced_seconds * 1000:.0f} ms; "
            f"{self.catch_up_rounds} catch-up round(s); old copy "
            f"{'deleted' if self.cleaned else 'kept'}"
        ]
        lines += [
            f"  {name}: {entry.rows} rows, md5 {entry.checksum or '-'}, "
            f"{entry.copied} copied, {entry.deleted} deleted"
            for name, entry in self.tables.items()
        ]
        return "\n".join(lines)


async def move_shard(
    *,
    shard: int,
    engines: Sequence[AsyncEngine],
    target: int,
    tables: Sequence[ShardedTable],
    drain_seconds: float,
    clean_up: bool = True,
) -> MoveReport:
    """Move ``shard`` to ``engines[target]`` from whichever database owns it now."""
    started = time.perf_counter()
    shard_map = await load_shard_map(engines)
    source = shard_map.owner(shard)
    if source == target:
        raise MoveError(f"shard {shard} is already on database {target}")
    report = MoveReport(shard=shard, source=source, target=target)
    if source == UNOWNED:
        await _finish_interrupted_switch(shard, engines, target, tables, report)
        report.total_seconds = time.perf_counter() - started
        return report
    source_engine, target_engine = engines[source], engines[target]

    for sharded in tables:  # 1. copy
        copied, deleted = await _sync_table(source_engine, target_engine, sharded, shard)
        report.tables[sharded.name] = TableReport(copied=copied, deleted=deleted)
    for _ in range(MAX_CATCH_UP_ROUNDS):  # 2. catch up
        report.catch_up_rounds += 1
        changed = await _sync_tables(source_engine, target_engine, tables, shard, report)
        if changed <= SETTLED_ROWS:
            break

    async with source_engine.connect() as fence:  # 3. fence
        await fence.execute(text(f"SET LOCAL lock_timeout = '{FENCE_LOCK_TIMEOUT}'"))
        epoch = await fence.scalar(
            select(OWNERSHIP.c.epoch).where(OWNERSHIP.c.shard == shard).with_for_update()
        )
        if epoch is None:
            raise MoveError(f"shard {shard} left database {source} during the move")
        fenced_at = time.perf_counter()
        try:
            await _sync_tables(source_engine, target_engine, tables, shard, report)  # 4.
            await _verify(source_engine, target_engine, tables, shard, report)
            async with target_engine.begin() as claim:  # 5. switch
                await claim.execute(
                    pg_insert(OWNERSHIP)
                    .values(shard=shard, epoch=epoch + 1)
                    .on_conflict_do_update(
                        index_elements=[OWNERSHIP.c.shard], set_={"epoch": epoch + 1}
                    )
                )
                await fence.execute(OWNERSHIP.delete().where(OWNERSHIP.c.shard == shard))
                await fence.commit()
        except BaseException:
            await fence.rollback()
            raise
        report.fenced_seconds = time.perf_counter() - fenced_at
    logger.info(
        "shard switched",
        shard=shard,
        source=source,
        target=target,
        fenced_ms=round(report.fenced_seconds * 1000, 1),
    )

    if clean_up:  # 6.
        await asyncio.sleep(drain_seconds)
        await _delete_shard_rows(source_engine, tables, shard)
        report.cleaned = True
    report.total_seconds = time.perf_counter() - started
    return report


async def _finish_interrupted_switch(
    shard: int,
    engines: Sequence[AsyncEngine],
    target: int,
    tables: Sequence[ShardedTable],
    report: MoveReport,
) -> None:
    """Nobody owns the shard: a move stopped between its two commits, after verifying the
    target's copy. ``target`` takes the shard if every other copy of it equals its own."""
    for index, engine in enumerate(engines):
        if index == target:
            continue
        counts = await _checksums(engine, tables, shard)
        if any(rows for rows, _ in counts.values()):
            target_counts = await _checksums(engines[target], tables, shard)
            if target_counts != counts:
                raise MoveError(
                    f"shard {shard} is owned by nobody and database {index} holds rows that "
                    f"differ from database {target}'s: resolve by hand"
                )
    epochs = [await read_ownership(engine) for engine in engines]
    highest = max((owned.get(shard, 0) for owned in epochs), default=0)
    async with engines[target].begin() as claim:
        await claim.execute(pg_insert(OWNERSHIP).values(shard=shard, epoch=highest + 1))
    for name, (rows, checksum) in (await _checksums(engines[target], tables, shard)).items():
        report.tables[name] = TableReport(rows=rows, checksum=checksum)
    logger.warning("interrupted shard move completed", shard=shard, target=target)


async def _sync_tables(
    source: AsyncEngine,
    target: AsyncEngine,
    tables: Sequence[ShardedTable],
    shard: int,
    report: MoveReport,
) -> int:
    changed = 0
    for sharded in tables:
        copied, deleted = await _sync_table(source, target, sharded, shard)
        entry = report.tables[sharded.name]
        entry.copied += copied
        entry.deleted += deleted
        changed += copied + deleted
    return changed


async def _row_digests(engine: AsyncEngine, sharded: ShardedTable, shard: int) -> dict[Key, str]:
    keys = sharded.order_by()
    statement = text(
        f'SELECT {keys}, md5(row_to_json(t)::text) FROM "{sharded.name}" AS t '  # noqa: S608 - names from metadata
        f"WHERE {sharded.where_shard()}"
    )
    async with engine.connect() as connection:
        await _utc(connection)
        rows = await connection.execute(statement, {"shard": shard})
        width = len(sharded.key_columns)
        return {tuple(row[:width]): row[width] for row in rows}


async def _sync_table(
    source: AsyncEngine, target: AsyncEngine, sharded: ShardedTable, shard: int
) -> tuple[int, int]:
    """Make the target's rows of the shard equal to the source's; (copied, deleted)."""
    wanted, present = await asyncio.gather(
        _row_digests(source, sharded, shard), _row_digests(target, sharded, shard)
    )
    to_copy = [key for key, digest in wanted.items() if present.get(key) != digest]
    to_delete = [key for key in present if key not in wanted]
    table = sharded.table
    key_columns = [table.c[name] for name in sharded.key_columns]
    for start in range(0, len(to_copy), BATCH_ROWS):
        batch = to_copy[start : start + BATCH_ROWS]
        async with source.connect() as reader:
            rows = await reader.execute(table.select().where(_key_in(key_columns, batch)))
            values = [dict(row._mapping) for row in rows]
        if not values:
            continue  # deleted at the source since the digest: the next round sees it
        statement = pg_insert(table).values(values)
        statement = statement.on_conflict_do_update(
            index_elements=key_columns,
            set_={
                column.name: statement.excluded[column.name]
                for column in table.columns
                if column.name not in sharded.key_columns
            },
        )
        async with target.begin() as writer:
            await writer.execute(statement)
    for start in range(0, len(to_delete), BATCH_ROWS):
        batch = to_delete[start : start + BATCH_ROWS]
        async with target.begin() as writer:
            await writer.execute(table.delete().where(_key_in(key_columns, batch)))
    return len(to_copy), len(to_delete)


def _key_in(key_columns: list[Column[Any]], keys: list[Key]) -> ColumnElement[bool]:
    if len(key_columns) == 1:
        return key_columns[0].in_([key[0] for key in keys])
    return tuple_(*key_columns).in_(keys)


async def _checksums(
    engine: AsyncEngine, tables: Sequence[ShardedTable], shard: int
) -> dict[str, tuple[int, str]]:
    """Per table: the shard's row count and an md5 over its rows in key order."""
    found: dict[str, tuple[int, str]] = {}
    async with engine.connect() as connection:
        await _utc(connection)
        for sharded in tables:
            digest = f"md5(string_agg(md5(row_to_json(t)::text), '' ORDER BY {sharded.order_by()}))"
            statement = f"SELECT count(*), coalesce({digest}, '') FROM \"{sharded.name}\" AS t"  # noqa: S608
            statement += f" WHERE {sharded.where_shard()}"
            row = (await connection.execute(text(statement), {"shard": shard})).one()
            found[sharded.name] = (row[0], row[1])
    return found


async def _verify(
    source: AsyncEngine,
    target: AsyncEngine,
    tables: Sequence[ShardedTable],
    shard: int,
    report: MoveReport,
) -> None:
    at_source, at_target = await asyncio.gather(
        _checksums(source, tables, shard), _checksums(target, tables, shard)
    )
    for name, (rows, checksum) in at_source.items():
        if at_target[name] != (rows, checksum):
            raise MoveError(
                f"{name}: source has {rows} rows ({checksum}), target {at_target[name][0]} "
                f"({at_target[name][1]}); the move is abandoned, the source keeps the shard"
            )
        report.tables[name].rows = rows
        report.tables[name].checksum = checksum


async def _delete_shard_rows(
    engine: AsyncEngine, tables: Sequence[ShardedTable], shard: int
) -> None:
    async with engine.begin() as connection:
        for sharded in tables:
            await connection.execute(
                text(f'DELETE FROM "{sharded.name}" WHERE {sharded.where_shard()}'),  # noqa: S608
                {"shard": shard},
            )


async def _utc(connection: AsyncConnection) -> None:
    # row_to_json renders timestamps in the session's time zone: the same on both sides.
    await connection.execute(text("SET TIME ZONE 'UTC'"))


__all__ = ["OWNERSHIP_TABLE", "MoveError", "MoveReport", "ShardedTable", "move_shard"]
