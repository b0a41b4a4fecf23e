"""The transactional outbox and the consumer inbox: tables, migration helpers and their writes.

A service writes its event with ``record_event`` in the transaction that changes its state, so
the event exists exactly when the change does; the relay publishes it later. A consumer whose
operation is not idempotent by nature calls ``mark_processed_once`` in its handler's transaction.

The tables are defined twice on purpose: ``define_outbox_tables`` puts them on a service's
MetaData (so Alembic autogenerate sees them); ``create_outbox_tables`` (version 1) and
``add_inbox_age_index`` (version 2) are frozen for migrations, which must not change when this
library does. A test checks that the two agree. The statements below use lightweight table
clauses, so they need neither.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol, cast

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Identity,
    Index,
    MetaData,
    PrimaryKeyConstraint,
    Table,
    Text,
    TextClause,
    UniqueConstraint,
    Uuid,
    column,
    delete,
    func,
    select,
    table,
    text,
    tuple_,
)
from sqlalchemy.dialects.postgresql import JSONB, insert
from sqlalchemy.engine import CursorResult
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from sqlalchemy.sql import ColumnElement
from sqlalchemy.sql.schema import SchemaItem

from terrascale.common.events.envelope import Envelope

OUTBOX_TABLE = "outbox_event"
INBOX_TABLE = "processed_event"
UNPUBLISHED_INDEX = "ix_outbox_event_unpublished"
INBOX_AGE_INDEX = "ix_processed_event_processed_at"
UNPUBLISHED = text("published_at IS NULL")

outbox_event = table(
    OUTBOX_TABLE,
    column("seq", BigInteger),
    column("id", Uuid),
    column("type", Text),
    column("subject", Text),
    column("payload", JSONB),
    column("created_at", DateTime(timezone=True)),
    column("published_at", DateTime(timezone=True)),
)
processed_event = table(
    INBOX_TABLE,
    column("consumer_group", Text),
    column("event_id", Uuid),
    column("processed_at", DateTime(timezone=True)),
)


@dataclass(frozen=True, slots=True)
class OutboxTables:
    outbox_event: Table
    processed_event: Table


def define_outbox_tables(metadata: MetaData) -> OutboxTables:
    """Put both tables on ``metadata`` (a service passes ``Base.metadata``). Idempotent."""
    if OUTBOX_TABLE in metadata.tables:
        return OutboxTables(metadata.tables[OUTBOX_TABLE], metadata.tables[INBOX_TABLE])
    outbox = Table(
        OUTBOX_TABLE,
        metadata,
        Column("seq", BigInteger, Identity(always=True), primary_key=True),
        Column("id", Uuid, nullable=False),
        Column("type", Text, nullable=False),
        Column("subject", Text, nullable=False),
        Column("payload", JSONB, nullable=False),
        Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
        Column("published_at", DateTime(timezone=True), nullable=True),
        UniqueConstraint("id", name="uq_outbox_event_id"),
        Index(UNPUBLISHED_INDEX, "seq", postgresql_where=UNPUBLISHED),
    )
    inbox = Table(
        INBOX_TABLE,
        metadata,
        Column("consumer_group", Text, primary_key=True),
        Column("event_id", Uuid, primary_key=True),
        Column("processed_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
        Index(INBOX_AGE_INDEX, "processed_at"),
    )
    return OutboxTables(outbox, inbox)


class MigrationOperations(Protocol):
    """The part of ``alembic.op`` the helpers use (the module itself satisfies it)."""

    def create_table(self, table_name: str, *columns: SchemaItem, **kw: Any) -> Table: ...

    def create_index(
        self,
        index_name: str | None,
        table_name: str,
        columns: Sequence[str | TextClause | ColumnElement[Any]],
        **kw: Any,
    ) -> None: ...

    def drop_index(self, index_name: str, table_name: str | None = None, **kw: Any) -> None: ...

    def drop_table(self, table_name: str, **kw: Any) -> None: ...


def create_outbox_tables(op: MigrationOperations) -> None:
    """Version 1 of both tables, for a service's migration: ``create_outbox_tables(op)``."""
    op.create_table(
        OUTBOX_TABLE,
        Column("seq", BigInteger, Identity(always=True), nullable=False),
        Column("id", Uuid, nullable=False),
        Column("type", Text, nullable=False),
        Column("subject", Text, nullable=False),
        Column("payload", JSONB, nullable=False),
        Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
        Column("published_at", DateTime(timezone=True), nullable=True),
        PrimaryKeyConstraint("seq", name="pk_outbox_event"),
        UniqueConstraint("id", name="uq_outbox_event_id"),
    )
    # Only unpublished rows are indexed: the relay's scan stays small however long the table.
    op.create_index(UNPUBLISHED_INDEX, OUTBOX_TABLE, ["seq"], postgresql_where=UNPUBLISHED)
    op.create_table(
        INBOX_TABLE,
        Column("consumer_group", Text, nullable=False),
        Column("event_id", Uuid, nullable=False),
        Column("processed_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
        PrimaryKeyConstraint("consumer_group", "event_id", name="pk_processed_event"),
    )


def add_inbox_age_index(op: MigrationOperations) -> None:
    """Version 2: the inbox purge finds its oldest entries without reading the whole table."""
    op.create_index(INBOX_AGE_INDEX, INBOX_TABLE, ["processed_at"])


def drop_inbox_age_index(op: MigrationOperations) -> None:
    op.drop_index(INBOX_AGE_INDEX, table_name=INBOX_TABLE)


def drop_outbox_tables(op: MigrationOperations) -> None:
    op.drop_table(INBOX_TABLE)
    op.drop_index(UNPUBLISHED_INDEX, table_name=OUTBOX_TABLE)
    op.drop_table(OUTBOX_TABLE)


async def record_event(session: AsyncSession, envelope: Envelope) -> None:
    """Add the event to the caller's transaction; it is published only if that commits.

    Call it after the state change, so the aggregate's row lock orders the events of one subject.
    """
    await record_events(session, [envelope])


async def record_events(session: AsyncSession, envelopes: Sequence[Envelope]) -> None:
    """``record_event`` for several events in one statement (one round trip, not one each);
    they are published in the order given."""
    if not envelopes:
        return
    rows = [
        {
            "id": envelope.id,
            "type": envelope.type,
            "subject": envelope.subject,
            "payload": envelope.model_dump(mode="json"),
        }
        for envelope in envelopes
    ]
    await session.execute(insert(outbox_event).values(rows))


async def mark_processed_once(session: AsyncSession, *, group: str, event_id: uuid.UUID) -> bool:
    """True the first time ``group`` sees ``event_id`` in a committed transaction, else False.

    A concurrent duplicate blocks on the primary key until the first transaction ends, then gets
    False (committed) or True (rolled back): never two Trues that both commit.
    """
    inserted = await session.execute(
        insert(processed_event)
        .values(consumer_group=group, event_id=event_id)
        .on_conflict_do_nothing(index_elements=["consumer_group", "event_id"])
        .returning(processed_event.c.event_id)
    )
    return inserted.first() is not None


async def purge_published(
    session: AsyncSession | AsyncConnection, *, before: datetime, limit: int = 1000
) -> int:
    """Delete up to ``limit`` of the oldest rows published before ``before``; returns how many."""
    oldest = (
        select(outbox_event.c.seq)
        .where(outbox_event.c.published_at < before)
        .order_by(outbox_event.c.seq)
        .limit(limit)
    )
    result = await session.execute(delete(outbox_event).where(outbox_event.c.seq.in_(oldest)))
    return cast(CursorResult[Any], result).rowcount


async def purge_processed(
    session: AsyncSession | AsyncConnection, *, before: datetime, limit: int = 1000
) -> int:
    """Forget up to ``limit`` of the inbox entries made before ``before``; returns how many.
    Keep entries longer than any redelivery can come late."""
    oldest = (
        select(processed_event.c.consumer_group, processed_event.c.event_id)
        .where(processed_event.c.processed_at < before)
        .order_by(processed_event.c.processed_at)
        .limit(limit)
    )
    result = await session.execute(
        delete(processed_event).where(
            tuple_(processed_event.c.consumer_group, processed_event.c.event_id).in_(oldest)
        )
    )
    return cast(CursorResult[Any], result).rowcount
