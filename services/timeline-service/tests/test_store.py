"""The Redis timelines: only existing ones are written, they are capped, marked ready, renewed
on read, and paged exactly even where neighbouring ids share a floating-point score."""

from __future__ import annotations

import math
from collections.abc import Callable

from redis.asyncio import Redis

from terrascale.timelines.store import TimelineStore
from terrascale.timelines.window import Window


async def _ready_timeline(store: TimelineStore, user_id: int, posts: list[int]) -> None:
    await store.begin_rebuild(user_id)
    assert await store.finish_rebuild(user_id, posts)


async def test_fan_out_skips_users_without_a_timeline(
    store: TimelineStore, redis: Redis, new_id: Callable[[], int]
) -> None:
    reader, absent, post = new_id(), new_id(), new_id()
    await _ready_timeline(store, reader, [])
    assert await store.add([reader, absent], [post]) == 1
    assert not await redis.exists(store.key(absent))
    assert await store.read(reader, Window(limit=10)) == [post]


async def test_a_timeline_is_not_ready_until_its_rebuild_finishes(
    store: TimelineStore, new_id: Callable[[], int]
) -> None:
    user, post = new_id(), new_id()
    assert await store.read(user, Window(limit=10)) is None
    await store.begin_rebuild(user)
    await store.add([user], [post])  # a fan-out landing during the rebuild is kept
    assert await store.read(user, Window(limit=10)) is None
    assert await store.finish_rebuild(user, [])
    assert await store.read(user, Window(limit=10)) == [post]


async def test_finishing_a_rebuild_of_a_vanished_timeline_fails(
    store: TimelineStore, new_id: Callable[[], int]
) -> None:
    user = new_id()
    await store.begin_rebuild(user)
    await store.drop(user)
    assert not await store.finish_rebuild(user, [new_id()])
    assert await store.read(user, Window(limit=10)) is None


async def test_timelines_keep_only_the_newest_posts(
    store: TimelineStore, redis: Redis, new_id: Callable[[], int]
) -> None:
    user = new_id()
    posts = [new_id() for _ in range(store.max_posts + 15)]
    await _ready_timeline(store, user, posts[:10])
    for post in posts[10:]:
        await store.add([user], [post])
    page = await store.read(user, Window(limit=store.max_posts + 5))
    assert page == sorted(posts, reverse=True)[: store.max_posts]
    assert await redis.zscore(store.key(user), "ready") == 0  # trimming keeps the markers


async def test_reads_renew_the_activity_window(
    store: TimelineStore, redis: Redis, new_id: Callable[[], int]
) -> None:
    user = new_id()
    await _ready_timeline(store, user, [])
    await redis.expire(store.key(user), 5)
    await store.read(user, Window(limit=1))
    assert await redis.ttl(store.key(user)) > 5


async def test_remove_takes_posts_out_and_creates_nothing(
    store: TimelineStore, redis: Redis, new_id: Callable[[], int]
) -> None:
    user, absent = new_id(), new_id()
    posts = [new_id() for _ in range(3)]
    await _ready_timeline(store, user, posts)
    await store.remove([user, absent], posts[:2])
    assert await store.read(user, Window(limit=10)) == [posts[2]]
    assert not await redis.exists(store.key(absent))


async def test_ids_sharing_a_score_page_exactly(
    store: TimelineStore, new_id: Callable[[], int]
) -> None:
    user = new_id()
    first = new_id()
    assert math.ulp(float(first)) > 1  # these ids really do collide as doubles
    posts = list(range(first, first + 40))  # fewer than max_posts: all kept
    await _ready_timeline(store, user, posts)
    newest_first = sorted(posts, reverse=True)

    pages: list[int] = []
    max_id: int | None = None
    while page := await store.read(user, Window(limit=7, older_than=max_id)):
        pages.extend(page)
        max_id = page[-1]
    assert pages == newest_first

    forward: list[int] = []
    min_id = first - 1
    while page := await store.read(user, Window(limit=6, newer_than=min_id, from_oldest=True)):
        forward = page + forward
        min_id = page[0]
    assert forward == newest_first

    since = await store.read(user, Window(limit=5, newer_than=posts[36]))
    assert since == newest_first[:3]
