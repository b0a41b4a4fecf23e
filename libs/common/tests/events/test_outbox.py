"""The outbox, the inbox and the relay, against real PostgreSQL and each bus."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Connection, MetaData, insert, select, text, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from terrascale.common.db import NAMING_CONVENTION
from terrascale.common.events import (
    Envelope,
    EventBus,
    OutboxRelay,
    define_outbox_tables,
    mark_processed_once,
    partition_for,
    record_event,
    record_events,
)
from terrascale.common.events.outbox import outbox_event, processed_event
from terrascale.common.events.relay import PURGE_BATCH
from terrascale.common.events.settings import EventSettings

from .harness import position_of, record_all, user_event, wait_until


async def published_at(
    session_factory: async_sessionmaker[AsyncSession], ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, datetime | None]:
    async with session_factory() as session:
        rows = await session.execute(
            select(outbox_event.c.id, outbox_event.c.published_at).where(outbox_event.c.id.in_(ids))
        )
        return {row.id: row.published_at for row in rows}


async def delivered(bus: EventBus, settings: EventSettings, subject: str) -> list[Envelope]:
    """Every envelope of ``subject`` its partition holds, in stream order."""
    partition = partition_for(subject, settings.event_partitions)
    raw = await bus.history("user", partition, limit=10_000)
    return [e for e in map(Envelope.from_json, raw) if e.subject == subject]


async def drain(relay: OutboxRelay) -> None:
    while await relay.publish_batch():
        pass


def _diff(connection: Connection) -> list[object]:
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    define_outbox_tables(metadata)
    define_outbox_tables(metadata)  # a second call is a no-op
    context = MigrationContext.configure(connection, opts={"compare_type": True})
    return [
        change
        for change in compare_metadata(context, metadata)
        if "demo_applied" not in repr(change) and "alembic_version" not in repr(change)
    ]


async def test_migration_helper_and_metadata_agree(engine: AsyncEngine) -> None:
    async with engine.connect() as connection:
        assert await connection.run_sync(_diff) == []


async def test_event_is_rolled_back_with_its_transaction(
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    kept, dropped = user_event(1, 0), user_event(1, 1)
    await record_all(session_factory, [kept])

    async def failing_change() -> None:
        async with session_factory() as session, session.begin():
            await record_event(session, dropped)
            raise RuntimeError("state change failed")

    with pytest.raises(RuntimeError, match="state change failed"):
        await failing_change()
    rows = await published_at(session_factory, [kept.id, dropped.id])
    assert set(rows) == {kept.id}


async def test_several_events_go_in_one_statement_in_their_order(
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    subject = uuid.uuid4().int % 10**15 + 1
    events = [user_event(subject, version) for version in range(5)]
    async with session_factory() as session, session.begin():
        await record_events(session, [])  # nothing to record: no statement, no error
        await record_events(session, events)
    async with session_factory() as session:
        rows = await session.execute(
            select(outbox_event.c.id)
            .where(outbox_event.c.id.in_([event.id for event in events]))
            .order_by(outbox_event.c.seq)
        )
        assert [row.id for row in rows] == [event.id for event in events]


async def test_relay_publishes_in_order_and_marks_rows(
    bus: EventBus,
    event_settings: EventSettings,
    engine: AsyncEngine,
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    subject_a, subject_b = uuid.uuid4().int % 10**15 + 1, uuid.uuid4().int % 10**15 + 1
    events = [user_event(s, k) for k in range(12) for s in (subject_a, subject_b)]
    for start in range(0, len(events), 5):  # several transactions
        await record_all(session_factory, events[start : start + 5])
    relay = OutboxRelay(engine, bus, batch_size=7)

    await drain(relay)

    for subject in (subject_a, subject_b):
        got = await delivered(bus, event_settings, str(subject))
        assert [position_of(e) for e in got] == list(range(12))
        assert got[0].model_dump() == events[0 if subject == subject_a else 1].model_dump()
    marks = await published_at(session_factory, [e.id for e in events])
    assert all(mark is not None for mark in marks.values())
    assert relay.published >= len(events)


class PublishThenCrash:
    """A relay whose process dies right after the bus stored the batch, before the commit."""

    def __init__(self, bus: EventBus, how: str) -> None:
        self.bus = bus
        self.how = how
        self.published = asyncio.Event()

    async def publish(self, envelopes: Sequence[Envelope]) -> None:
        await self.bus.publish(envelopes)
        self.published.set()
        if self.how == "raise":
            raise ConnectionError("relay lost its database after publishing")
        await asyncio.Event().wait()  # "cancel": killed here


@pytest.mark.parametrize("how", ["raise", "cancel"])
async def test_crash_between_publish_and_mark_duplicates_and_loses_nothing(
    how: str,
    bus: EventBus,
    event_settings: EventSettings,
    engine: AsyncEngine,
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    subject = uuid.uuid4().int % 10**15 + 1
    events = [user_event(subject, k) for k in range(5)]
    await record_all(session_factory, events)
    crashing = PublishThenCrash(bus, how)

    if how == "raise":
        with pytest.raises(ConnectionError):
            await drain(OutboxRelay(engine, crashing))
    else:
        task = asyncio.create_task(drain(OutboxRelay(engine, crashing)))
        await crashing.published.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert all(
        mark is None
        for mark in (await published_at(session_factory, [e.id for e in events])).values()
    )

    await drain(OutboxRelay(engine, bus))

    got = await delivered(bus, event_settings, str(subject))
    counts = Counter(e.id for e in got)
    assert set(counts) == {e.id for e in events}  # nothing lost
    if bus.transport == "redis":
        assert set(counts.values()) == {2}  # each one duplicated
        assert [position_of(e) for e in got] == [0, 1, 2, 3, 4] * 2
    else:
        assert all(count >= 1 for count in counts.values())  # JetStream may drop the repeat
    marks = await published_at(session_factory, [e.id for e in events])
    assert all(mark is not None for mark in marks.values())


async def test_only_the_leader_publishes_and_a_standby_takes_over(
    bus: EventBus,
    event_settings: EventSettings,
    engine: AsyncEngine,
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    first = OutboxRelay(engine, bus, poll_seconds=0.01, standby_seconds=0.05)
    second = OutboxRelay(engine, bus, poll_seconds=0.01, standby_seconds=0.05)
    stop_first, stop_second = asyncio.Event(), asyncio.Event()
    first_task = asyncio.create_task(first.run_until(stop_first))

    async def first_leads() -> bool:
        return first.is_leader

    await wait_until(first_leads, what="the first relay to lead")
    second_task = asyncio.create_task(second.run_until(stop_second))
    subject = uuid.uuid4().int % 10**15 + 1
    early = [user_event(subject, k) for k in range(10)]
    await record_all(session_factory, early)

    async def all_published(events: list[Envelope]) -> bool:
        marks = await published_at(session_factory, [e.id for e in events])
        return all(mark is not None for mark in marks.values())

    await wait_until(lambda: all_published(early), what="the leader to publish")
    assert first.published >= len(early)
    assert second.published == 0
    assert not second.is_leader

    stop_first.set()
    await first_task

    async def second_leads() -> bool:
        return second.is_leader

    await wait_until(second_leads, what="the standby to take over")
    late = [user_event(subject, k) for k in range(10, 15)]
    await record_all(session_factory, late)
    await wait_until(lambda: all_published(late), what="the new leader to publish")
    assert second.published >= len(late)
    stop_second.set()
    await second_task
    got = await delivered(bus, event_settings, str(subject))
    assert [position_of(e) for e in got] == list(range(15))


async def test_relay_survives_a_failing_bus_and_keeps_the_rows(
    redis_bus: EventBus,
    engine: AsyncEngine,
    session_factory: async_sessionmaker[AsyncSession],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    events = [user_event(uuid.uuid4().int % 10**15 + 1, 0)]
    await record_all(session_factory, events)
    crashing = PublishThenCrash(redis_bus, "raise")
    relay = OutboxRelay(engine, crashing, poll_seconds=0.01)
    monkeypatch.setattr("terrascale.common.events.relay.ERROR_BACKOFF_SECONDS", 0.01)
    stop = asyncio.Event()
    task = asyncio.create_task(relay.run_until(stop))
    await crashing.published.wait()
    await asyncio.sleep(0.05)
    assert not task.done()  # logged and retried, not crashed
    stop.set()
    await task
    marks = await published_at(session_factory, [e.id for e in events])
    assert all(mark is None for mark in marks.values())
    await drain(OutboxRelay(engine, redis_bus))


async def test_relay_purges_old_published_rows_and_inbox_entries_past_their_retention(
    redis_bus: EventBus,
    engine: AsyncEngine,
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    old, fresh = user_event(1, 0), user_event(1, 1)
    await record_all(session_factory, [old, fresh])
    relay = OutboxRelay(
        engine, redis_bus, keep_published=timedelta(hours=1), keep_processed=timedelta(hours=12)
    )
    await drain(relay)
    group = f"purge-{uuid.uuid4().hex[:8]}"
    now = datetime.now(UTC)
    two_days_ago = now - timedelta(days=2)
    # More expired entries than one purge batch deletes.
    expired = [uuid.uuid4() for _ in range(2 * PURGE_BATCH + 500)]
    within_retention = uuid.uuid4()  # older than keep_published, younger than keep_processed
    async with session_factory() as session, session.begin():
        await session.execute(
            insert(processed_event),
            [
                {"consumer_group": group, "event_id": event_id, "processed_at": two_days_ago}
                for event_id in expired
            ]
            + [
                {
                    "consumer_group": group,
                    "event_id": within_retention,
                    "processed_at": now - timedelta(hours=6),
                },
                {"consumer_group": group, "event_id": fresh.id, "processed_at": now},
            ],
        )
        await session.execute(
            update(outbox_event)
            .where(outbox_event.c.id == old.id)
            .values(published_at=two_days_ago)
        )

    totals = (0, 0)
    async with engine.connect() as connection:
        # A round is bounded in time; rounds repeat until one finds nothing left.
        while (counts := await relay.purge(connection)) != (0, 0):
            totals = (totals[0] + counts[0], totals[1] + counts[1])
    assert totals == (1, len(expired))

    assert set(await published_at(session_factory, [old.id, fresh.id])) == {fresh.id}
    async with session_factory() as session:
        left = await session.scalars(
            select(processed_event.c.event_id).where(processed_event.c.consumer_group == group)
        )
        assert set(left) == {within_retention, fresh.id}


async def test_inbox_says_yes_once_even_to_concurrent_duplicates(
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    event_id = uuid.uuid4()
    group = f"inbox-{uuid.uuid4().hex[:8]}"
    entered = asyncio.Barrier(4)

    async def attempt() -> bool:
        async with session_factory() as session, session.begin():
            await session.execute(text("SELECT 1"))
            await entered.wait()
            return await mark_processed_once(session, group=group, event_id=event_id)

    results = await asyncio.gather(*(attempt() for _ in range(4)))
    assert sorted(results) == [False, False, False, True]
    async with session_factory() as session, session.begin():
        assert not await mark_processed_once(session, group=group, event_id=event_id)
        assert await mark_processed_once(session, group=group + "-other", event_id=event_id)
