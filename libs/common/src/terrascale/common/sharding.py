"""Application-level sharding: data placed by the logical shard of its owner's id, on one or
more physical PostgreSQL databases (ADR 0013).

- The **logical shard** of an id is the low 10 bits of its 13-bit shard field: 1,024 logical
  shards. Users are minted on shards 0-1023, so for them the field *is* the logical shard; the
  wider field leaves room to split each logical shard eight ways later.
- Each physical database lists the logical shards it owns in ``shard_ownership``; the union over
  the databases is the **shard map**. A process caches it and reloads it every
  SHARD_MAP_REFRESH_SECONDS and whenever a write finds its shard gone.
- **Writes are fenced**: a write transaction first takes a share lock on its shard's ownership
  row in the database it was routed to. A shard move deletes that row under an exclusive lock,
  so a write either commits before the move's final copy or finds the row gone, reloads the map
  and goes to the new database. No write lands in a database that no longer owns its shard.
- **Reads** follow the cached map without a fence; right after a move a process may read the
  old copy for up to one refresh interval (the mover keeps it that long before deleting it).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import defaultdict
from collections.abc import AsyncGenerator, Awaitable, Callable, Coroutine, Iterable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from functools import partial
from typing import Annotated, Any, TypeVar

from fastapi import FastAPI
from pydantic import Field, field_validator
from sqlalchemy import BigInteger, Column, MetaData, SmallInteger, Table, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from terrascale.common.db import create_engine, create_session_factory, ping, transaction
from terrascale.common.errors import AppError
from terrascale.common.ids import SEQUENCE_BITS
from terrascale.common.logging import get_logger
from terrascale.common.settings import CommaSeparated, ServiceSettings

logger = get_logger(__name__)

LOGICAL_SHARD_BITS = 10
LOGICAL_SHARDS = 1 << LOGICAL_SHARD_BITS
OWNERSHIP_TABLE = "shard_ownership"
INITIAL_EPOCH = 1  # the placement a service seeds itself; a move writes a higher epoch
UNOWNED = -1

T = TypeVar("T")


def logical_shard(owner_id: int) -> int:
    """The logical shard of an id: the low bits of its shard field."""
    return (owner_id >> SEQUENCE_BITS) & (LOGICAL_SHARDS - 1)


def logical_shard_sql(column: str) -> str:
    """The same as :func:`logical_shard`, as SQL over a bigint column."""
    return f'(("{column}" >> {SEQUENCE_BITS}) & {LOGICAL_SHARDS - 1})'


def default_owner(shard: int, databases: int) -> int:
    """Where a shard starts out: contiguous ranges of equal size, the first on the service's
    own database (with four databases: 0-255, 256-511, 512-767, 768-1023)."""
    return shard * databases // LOGICAL_SHARDS


def define_ownership_table(metadata: MetaData) -> Table:
    """The logical shards this database owns. Idempotent, like the outbox tables."""
    if OWNERSHIP_TABLE in metadata.tables:
        return metadata.tables[OWNERSHIP_TABLE]
    return Table(
        OWNERSHIP_TABLE,
        metadata,
        Column("shard", SmallInteger, primary_key=True, autoincrement=False),
        # Raised by every move, so a copy left behind by an interrupted move loses to the new.
        Column("epoch", BigInteger, nullable=False),
    )


# This module's own handle on the table; each service also puts it on its metadata (migrations).
OWNERSHIP = define_ownership_table(MetaData())


class ShardedServiceSettings(ServiceSettings):
    """Settings of a service whose data is sharded."""

    shard_databases: Annotated[list[str], CommaSeparated] = Field(
        default_factory=list,
        description="Further physical databases the 1,024 logical shards are spread over, "
        "besides the service's own (names on the same server, or full URLs); empty: one "
        "database holds every shard.",
    )
    shard_map_refresh_seconds: Annotated[float, Field(gt=0, le=3600)] = Field(
        default=5.0, description="How often each process reloads the shard map."
    )

    @field_validator("shard_databases", mode="before")
    @classmethod
    def _split_database_list(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("shard_databases")
    @classmethod
    def _check_database_entries(cls, entries: list[str]) -> list[str]:
        for entry in entries:
            if "://" in entry:
                try:
                    make_url(entry)
                except ArgumentError as exc:
                    raise ValueError(f"{entry!r} is not a valid database URL") from exc
        return entries

    @property
    def shard_database_urls(self) -> list[URL]:
        """Every physical database, the service's own first (it also holds unsharded tables)."""
        own = self.sqlalchemy_url
        urls = [own]
        for entry in self.shard_databases:
            if "://" in entry:
                urls.append(make_url(entry).set(drivername="postgresql+asyncpg"))
            else:
                urls.append(own.set(database=entry))
        return urls


class ShardUnavailableError(AppError):
    """A write found its shard owned by no database: a move was interrupted at its switch."""

    status = 503
    title = "Service Unavailable"
    slug = "shard-unavailable"

    def __init__(self, detail: str) -> None:
        super().__init__(detail, headers={"Retry-After": "1"})


@dataclass(frozen=True, slots=True, eq=False)
class ShardDatabase:
    index: int
    name: str
    engine: AsyncEngine
    session_factory: async_sessionmaker[AsyncSession]


@dataclass(frozen=True, slots=True)
class ShardMap:
    """Which database (by index) owns each logical shard; UNOWNED for none."""

    owners: tuple[int, ...]
    epochs: tuple[int, ...] = field(default=())

    def owner(self, shard: int) -> int:
        return self.owners[shard]

    def shards_of(self, database: int) -> list[int]:
        return [shard for shard, owner in enumerate(self.owners) if owner == database]

    def describe(self) -> list[tuple[int, int, int]]:
        """(first shard, last shard, database) runs, for people to read."""
        runs: list[tuple[int, int, int]] = []
        for shard, owner in enumerate(self.owners):
            if runs and runs[-1][2] == owner and runs[-1][1] == shard - 1:
                runs[-1] = (runs[-1][0], shard, owner)
            else:
                runs.append((shard, shard, owner))
        return runs


async def read_ownership(engine: AsyncEngine) -> dict[int, int]:
    """shard → epoch, as this database records it."""
    async with engine.connect() as connection:
        rows = await connection.execute(select(OWNERSHIP.c.shard, OWNERSHIP.c.epoch))
        return dict(rows.tuples().all())


async def load_shard_map(engines: Sequence[AsyncEngine]) -> ShardMap:
    """The union of every database's ownership; where two claim a shard, the higher epoch wins
    (the other is an interrupted move's leftover)."""
    owned = await asyncio.gather(*(read_ownership(engine) for engine in engines))
    owners = [UNOWNED] * LOGICAL_SHARDS
    epochs = [0] * LOGICAL_SHARDS
    for index, shards in enumerate(owned):
        for shard, epoch in shards.items():
            if epoch > epochs[shard]:
                owners[shard], epochs[shard] = index, epoch
    return ShardMap(tuple(owners), tuple(epochs))


async def seed_initial_placement(engines: Sequence[AsyncEngine]) -> int:
    """Give every unowned shard to its default database, as long as no shard was ever moved;
    returns how many were placed. Replicas starting together place the same shards in the same
    databases, so running it concurrently is harmless. Once a move happened, an unowned shard
    means an interrupted move, which the operator resolves with the move tool: guessing here
    could put writes on a stale copy."""
    current = await load_shard_map(engines)
    if any(epoch > INITIAL_EPOCH for epoch in current.epochs):
        return 0
    missing: dict[int, list[int]] = defaultdict(list)
    for shard, owner in enumerate(current.owners):
        if owner == UNOWNED:
            missing[default_owner(shard, len(engines))].append(shard)
    for index, shards in missing.items():
        async with engines[index].begin() as connection:
            await connection.execute(
                pg_insert(OWNERSHIP)
                .values([{"shard": shard, "epoch": INITIAL_EPOCH} for shard in shards])
                .on_conflict_do_nothing()
            )
    return sum(len(shards) for shards in missing.values())


class ShardedDatabases:
    """The physical databases of one service and the cached shard map over them."""

    def __init__(self, databases: Sequence[ShardDatabase]) -> None:
        if not databases:
            raise ValueError("at least one database is needed")
        self.databases = list(databases)
        self.map = ShardMap(tuple([UNOWNED] * LOGICAL_SHARDS))
        self.loaded = False
        self._reloading: asyncio.Lock = asyncio.Lock()

    @property
    def primary(self) -> ShardDatabase:
        """The service's own database: unsharded tables live here."""
        return self.databases[0]

    @property
    def engines(self) -> list[AsyncEngine]:
        return [database.engine for database in self.databases]

    async def start(self) -> None:
        """Place unowned shards if this is a fresh deployment, then load the map."""
        placed = await seed_initial_placement(self.engines)
        if placed:
            logger.info("shards placed", shards=placed, databases=len(self.databases))
        await self.reload()

    async def reload(self) -> None:
        async with self._reloading:
            self.map = await load_shard_map(self.engines)
            self.loaded = True

    async def close(self) -> None:
        """Dispose of the engines this object opened (not the primary's, which it was given)."""
        for database in self.databases[1:]:
            await database.engine.dispose()

    def database_for(self, owner_id: int) -> ShardDatabase:
        """The database holding the shard of ``owner_id`` (any id minted on that shard), by the
        cached map; for reads."""
        owner = self.map.owner(logical_shard(owner_id))
        if owner == UNOWNED:
            raise ShardUnavailableError(f"Shard {logical_shard(owner_id)} is unavailable.")
        return self.databases[owner]

    def group_by_database(self, ids: Iterable[int]) -> dict[ShardDatabase, list[int]]:
        """``ids`` by the database holding each, order kept within a group."""
        groups: dict[ShardDatabase, list[int]] = defaultdict(list)
        for owner_id in ids:
            groups[self.database_for(owner_id)].append(owner_id)
        return groups

    async def read_each(
        self,
        ids: Iterable[int],
        read: Callable[[AsyncSession, list[int]], Awaitable[list[T]]],
    ) -> list[T]:
        """Run ``read`` once per database for the ids it holds, all databases at once; the
        results concatenated, in no particular order."""

        async def on(database: ShardDatabase, group: list[int]) -> list[T]:
            async with database.session_factory() as session:
                return await read(session, group)

        groups = self.group_by_database(ids)
        results = await asyncio.gather(*(on(db, group) for db, group in groups.items()))
        return [item for result in results for item in result]

    @asynccontextmanager
    async def reading(self, owner_id: int) -> AsyncGenerator[AsyncSession]:
        async with self.database_for(owner_id).session_factory() as session:
            yield session

    @asynccontextmanager
    async def writing(self, owner_id: int) -> AsyncGenerator[AsyncSession]:
        """One transaction on the database that owns ``owner_id``'s shard, fenced against a
        concurrent move: after a move, a second attempt goes where the shard went."""
        shard = logical_shard(owner_id)
        for attempt in range(2):
            owner = self.map.owner(shard)
            if owner != UNOWNED:
                async with transaction(self.databases[owner].session_factory) as session:
                    if await _lock_ownership(session, shard):
                        yield session
                        return
            if attempt == 0:
                logger.info("shard not where the map said; reloading the map", shard=shard)
                await self.reload()
        raise ShardUnavailableError(f"Shard {shard} is being moved; retry shortly.")

    async def refresh_until(self, stop: asyncio.Event, interval_seconds: float) -> None:
        """Load the map now and every ``interval_seconds`` until ``stop``. A failure keeps the
        map in hand (a database down is the readiness check's business); until a first load
        succeeds, every request for sharded data answers 503."""
        while not stop.is_set():
            try:
                await (self.reload() if self.loaded else self.start())
            except Exception as exc:  # noqa: BLE001 - any failure: keep the old map
                logger.warning("shard map reload failed", error=repr(exc))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=interval_seconds)


async def _lock_ownership(session: AsyncSession, shard: int) -> bool:
    """Share-lock the shard's ownership row: True when this database still owns the shard. A
    move's exclusive lock on the row waits for this transaction, and this waits for a move."""
    statement = (
        select(OWNERSHIP.c.epoch).where(OWNERSHIP.c.shard == shard).with_for_update(read=True)
    )
    return (await session.scalar(statement)) is not None


def open_sharded_databases(
    settings: ShardedServiceSettings, primary: AsyncEngine
) -> ShardedDatabases:
    """The service's own database (``primary``, already open) and an engine for each further
    shard database, each with the service's pool settings."""
    urls = settings.shard_database_urls
    databases = [ShardDatabase(0, urls[0].database or "", primary, create_session_factory(primary))]
    for index, url in enumerate(urls[1:], start=1):
        engine = create_engine(settings, url=url, pool_name=f"shard{index}")
        databases.append(
            ShardDatabase(index, url.database or "", engine, create_session_factory(engine))
        )
    return ShardedDatabases(databases)


def shard_databases(
    settings: ShardedServiceSettings,
) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    """An app resource: every shard database on ``app.state.shards``, the shard map loaded
    (placed first on a fresh deployment), and each further database in the readiness check."""

    @asynccontextmanager
    async def open_shards(app: FastAPI) -> AsyncGenerator[None]:
        shards = open_sharded_databases(settings, app.state.engine)
        try:
            await shards.start()
        except Exception as exc:  # noqa: BLE001 - a database down: the refresher retries
            logger.warning("shard map not loaded; retrying in the background", error=repr(exc))
        app.state.shards = shards
        for database in shards.databases[1:]:
            app.state.readiness_checks[f"postgres:{database.name}"] = partial(ping, database.engine)
        try:
            yield
        finally:
            await shards.close()

    return open_shards


def shard_map_refresher(
    settings: ShardedServiceSettings,
) -> Callable[[FastAPI, asyncio.Event], Coroutine[Any, Any, None]]:
    """Background work: keep ``app.state.shards``'s map current."""

    async def run(app: FastAPI, stop: asyncio.Event) -> None:
        await app.state.shards.refresh_until(stop, settings.shard_map_refresh_seconds)

    return run
