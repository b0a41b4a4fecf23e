"""The worker end to end over the event bus: post and follow events reach home timelines, and a
worker killed in the middle of a fan-out loses nothing and doubles nothing."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence

import pytest
from asgi_lifespan import LifespanManager
from redis.asyncio import Redis

from terrascale.common.events import (
    ConsumerRunner,
    Envelope,
    EventBus,
    EventSettings,
    FollowCreated,
    PostCreated,
    PostDeleted,
    UserUpdated,
    connect_bus,
)
from terrascale.timelines.app import create_worker
from terrascale.timelines.config import TimelineSettings
from terrascale.timelines.consumer import CATEGORIES, CONSUMER_GROUP, timeline_events_handler
from terrascale.timelines.repository import TimelineRepository
from terrascale.timelines.service import Timelines
from terrascale.timelines.store import TimelineStore
from terrascale.timelines.window import Window


@pytest.fixture
def event_settings(redis_key_prefix: str) -> EventSettings:
    return EventSettings.model_validate(
        {
            "event_key_prefix": redis_key_prefix,
            "event_partitions": 2,
            "event_poll_seconds": 0.05,
            "event_claim_idle_seconds": 1.0,
        }
    )


@pytest.fixture
async def bus(
    build_settings: Callable[..., TimelineSettings], event_settings: EventSettings
) -> AsyncIterator[EventBus]:
    connected = await connect_bus(event_settings, build_settings())
    yield connected
    await connected.close()


async def eventually(check: Callable[[], Awaitable[bool]], *, seconds: float = 10) -> None:
    for _ in range(int(seconds / 0.05)):
        if await check():
            return
        await asyncio.sleep(0.05)
    pytest.fail("condition not met in time")


def _wrap(*events: FollowCreated | PostCreated | PostDeleted) -> list[Envelope]:
    return [Envelope.wrap(event, source="test") for event in events]


async def test_the_worker_applies_follow_and_post_events(
    build_settings: Callable[..., TimelineSettings],
    event_settings: EventSettings,
    bus: EventBus,
    timelines: Timelines,
    new_id: Callable[[], int],
) -> None:
    reader, author, kept, deleted = new_id(), new_id(), new_id(), new_id()
    await timelines.home(reader, Window(limit=5))  # the reader is active
    worker = create_worker(build_settings(), event_settings)
    async with LifespanManager(worker):
        await bus.publish(_wrap(FollowCreated(follower_id=reader, followee_id=author)))

        async def follows() -> bool:
            async with timelines.session_factory() as session:
                return reader in await TimelineRepository(session).followers_after(
                    author, after=0, limit=10
                )

        await eventually(follows)
        await bus.publish(
            _wrap(
                PostCreated(post_id=kept, author_id=author, text="kept"),
                PostCreated(post_id=deleted, author_id=author, text="deleted"),
                PostDeleted(post_id=deleted, author_id=author),
            )
        )

        async def settled() -> bool:
            return (await timelines.home(reader, Window(limit=5))).post_ids == [kept]

        await eventually(settled)


async def test_a_profile_change_drops_the_cached_author(
    build_settings: Callable[..., TimelineSettings],
    event_settings: EventSettings,
    bus: EventBus,
    timelines: Timelines,
    new_id: Callable[[], int],
) -> None:
    author = new_id()
    await timelines.cache.store({}, {author: b'{"id": "1", "username": "ada"}'})
    worker = create_worker(build_settings(), event_settings)
    async with LifespanManager(worker):
        await bus.publish(
            [
                Envelope.wrap(
                    UserUpdated(user_id=author, display_name="Ada", bio=None), source="test"
                )
            ]
        )

        async def dropped() -> bool:
            return (await timelines.cache.get([], [author]))[1] == {}

        await eventually(dropped)


class _StallingStore(TimelineStore):
    """Stalls forever after its first fan-out batch: the moment a crash is simulated."""

    def __init__(self, store: TimelineStore, stalled: asyncio.Event) -> None:
        super().__init__(
            store.redis,
            key_prefix=store.key_prefix,
            max_posts=store.max_posts,
            active_seconds=store.active_seconds,
        )
        self.stalled = stalled
        self.batches = 0

    async def add(self, user_ids: Sequence[int], post_ids: Sequence[int]) -> int:
        if self.batches == 1:
            self.stalled.set()
            await asyncio.Event().wait()
        self.batches += 1
        return await super().add(user_ids, post_ids)


async def test_a_worker_killed_mid_fan_out_loses_and_doubles_nothing(
    *,
    event_settings: EventSettings,
    bus: EventBus,
    build_timelines: Callable[..., Timelines],
    store: TimelineStore,
    redis: Redis,
    new_id: Callable[[], int],
) -> None:
    timelines = build_timelines(fanout_batch_size=10)
    author, post = new_id(), new_id()
    followers = [new_id() for _ in range(35)]
    for follower in followers:
        await timelines.follow_created(follower_id=follower, followee_id=author)
        await timelines.home(follower, Window(limit=1))

    stalled = asyncio.Event()
    crashing = Timelines(
        session_factory=timelines.session_factory,
        reads=timelines.reads,
        store=_StallingStore(store, stalled),
        cache=timelines.cache,
        celebrity_follower_threshold=timelines.celebrity_follower_threshold,
        fanout_batch_size=10,
    )
    first = ConsumerRunner(
        bus,
        group=CONSUMER_GROUP,
        categories=CATEGORIES,
        handler=timeline_events_handler(crashing),
        settings=event_settings,
        consumer="first",
    )
    stop = asyncio.Event()
    running = asyncio.create_task(first.run_until(stop))
    await bus.publish(_wrap(PostCreated(post_id=post, author_id=author, text="hello")))
    await asyncio.wait_for(stalled.wait(), timeout=10)
    reached = [f for f in followers if await redis.zscore(store.key(f), str(post)) is not None]
    assert len(reached) == 10  # one batch in, the rest not: the worker dies here
    running.cancel()  # a crash: nothing in hand is acknowledged
    await asyncio.gather(running, return_exceptions=True)

    second = ConsumerRunner(
        bus,
        group=CONSUMER_GROUP,
        categories=CATEGORIES,
        handler=timeline_events_handler(timelines),
        settings=event_settings,
        consumer="second",
    )
    stop = asyncio.Event()
    takeover = asyncio.create_task(second.run_until(stop))
    try:

        async def everyone_has_it() -> bool:
            pages = [await timelines.home(f, Window(limit=10)) for f in followers]
            return all(page.post_ids == [post] for page in pages)

        await eventually(everyone_has_it)
    finally:
        stop.set()
        await takeover
    for follower in followers:
        assert await redis.zrange(store.key(follower), 0, -1) == [
            b"building",
            b"ready",
            str(post).encode(),
        ]
