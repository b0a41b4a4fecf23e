"""Fan-out on write, merge on read and rebuilds, through the service's rules over real
PostgreSQL and Redis: every check compares a home timeline with what the follow graph says it
must hold."""

from __future__ import annotations

from collections.abc import Callable

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from terrascale.timelines.service import Timelines
from terrascale.timelines.store import TimelineStore
from terrascale.timelines.window import Window

EVERYTHING = Window(limit=1000)


async def _home(timelines: Timelines, user_id: int, window: Window = EVERYTHING) -> list[int]:
    return (await timelines.home(user_id, window)).post_ids


async def _followers(
    timelines: Timelines, author: int, count: int, new_id: Callable[[], int]
) -> list[int]:
    followers = [new_id() for _ in range(count)]
    for follower in followers:
        await timelines.follow_created(follower_id=follower, followee_id=author)
    return followers


async def test_a_post_reaches_every_active_follower_once(
    timelines: Timelines, store: TimelineStore, redis: Redis, new_id: Callable[[], int]
) -> None:
    author = new_id()
    followers = await _followers(timelines, author, 20, new_id)  # three fan-out batches
    active, inactive = followers[:15], followers[15:]
    for follower in active:
        assert await _home(timelines, follower) == []  # reading makes a timeline
    post = new_id()
    assert await timelines.post_created(post_id=post, author_id=author) == len(active)
    assert await timelines.post_created(post_id=post, author_id=author) == len(active)  # again
    for follower in active:
        assert await redis.zrange(store.key(follower), 0, -1) == [
            b"building",
            b"ready",
            str(post).encode(),
        ]
        assert await _home(timelines, follower) == [post]
    for follower in inactive:  # no timeline got no write, and is right when rebuilt
        assert not await redis.exists(store.key(follower))
        assert await _home(timelines, follower) == [post]


async def test_a_new_follow_merges_recent_posts_and_an_unfollow_removes_them(
    timelines: Timelines, new_id: Callable[[], int]
) -> None:
    reader, author, other = new_id(), new_id(), new_id()
    await timelines.follow_created(follower_id=reader, followee_id=other)
    assert await _home(timelines, reader) == []
    posts = [new_id() for _ in range(3)]
    for post in posts:
        await timelines.post_created(post_id=post, author_id=author)
    others = new_id()
    await timelines.post_created(post_id=others, author_id=other)

    await timelines.follow_created(follower_id=reader, followee_id=author)
    assert await _home(timelines, reader) == sorted([*posts, others], reverse=True)
    await timelines.follow_deleted(follower_id=reader, followee_id=author)
    assert await _home(timelines, reader) == [others]


async def test_a_deleted_post_leaves_every_timeline_and_stays_deleted(
    timelines: Timelines, new_id: Callable[[], int]
) -> None:
    author = new_id()
    followers = await _followers(timelines, author, 9, new_id)
    for follower in followers:
        await _home(timelines, follower)
    kept, deleted = new_id(), new_id()
    await timelines.post_created(post_id=kept, author_id=author)
    await timelines.post_created(post_id=deleted, author_id=author)
    await timelines.post_deleted(post_id=deleted, author_id=author)
    await timelines.post_created(post_id=deleted, author_id=author)  # a late redelivery
    for follower in followers:
        assert await _home(timelines, follower) == [kept]


async def test_a_deletion_seen_before_its_post_leaves_a_tombstone(
    timelines: Timelines, new_id: Callable[[], int]
) -> None:
    author, reader, post = new_id(), new_id(), new_id()
    await timelines.follow_created(follower_id=reader, followee_id=author)
    await timelines.post_deleted(post_id=post, author_id=author)
    assert await timelines.post_created(post_id=post, author_id=author) == 0
    assert await _home(timelines, reader) == []


async def test_celebrity_posts_are_merged_at_read_time_across_the_threshold(
    build_timelines: Callable[..., Timelines],
    redis: Redis,
    store: TimelineStore,
    new_id: Callable[[], int],
) -> None:
    timelines = build_timelines(celebrity_follower_threshold=5)
    celebrity, friend = new_id(), new_id()
    followers = await _followers(timelines, celebrity, 5, new_id)
    reader = followers[0]
    await timelines.follow_created(follower_id=reader, followee_id=friend)
    await _home(timelines, reader)

    before = new_id()  # 5 followers: not above the threshold, fanned out
    assert await timelines.post_created(post_id=before, author_id=celebrity) == 1
    await _followers(timelines, celebrity, 1, new_id)  # now 6
    during = new_id()
    assert await timelines.post_created(post_id=during, author_id=celebrity) == 0
    friends = new_id()
    await timelines.post_created(post_id=friends, author_id=friend)
    assert str(during).encode() not in await redis.zrange(store.key(reader), 0, -1)

    assert await _home(timelines, reader) == [friends, during, before]
    # Paging crosses both sources without repeating or skipping.
    first = await _home(timelines, reader, Window(limit=2))
    rest = await _home(timelines, reader, Window(limit=2, older_than=first[-1]))
    assert first + rest == [friends, during, before]
    # Back under the threshold, the celebrity-era post is still merged in.
    await timelines.follow_deleted(follower_id=followers[-1], followee_id=celebrity)
    after = new_id()
    assert await timelines.post_created(post_id=after, author_id=celebrity) > 0
    assert await _home(timelines, reader) == [after, friends, during, before]
    # Unfollowing a celebrity removes their merged posts too.
    await timelines.follow_deleted(follower_id=reader, followee_id=celebrity)
    assert await _home(timelines, reader) == [friends]


async def test_a_flushed_or_expired_timeline_is_rebuilt_exactly(
    timelines: Timelines, store: TimelineStore, new_id: Callable[[], int]
) -> None:
    reader = new_id()
    authors = [new_id() for _ in range(4)]
    for author in authors:
        await timelines.follow_created(follower_id=reader, followee_id=author)
    await _home(timelines, reader)
    posts = []
    for index in range(12):
        posts.append(new_id())
        await timelines.post_created(post_id=posts[-1], author_id=authors[index % 4])
    expected = sorted(posts, reverse=True)
    assert await _home(timelines, reader) == expected
    await store.drop(reader)  # what FLUSHALL, a restart without persistence or expiry leave
    assert await _home(timelines, reader) == expected


async def test_a_rebuild_holds_only_the_newest_posts(
    timelines: Timelines, store: TimelineStore, new_id: Callable[[], int]
) -> None:
    reader, author = new_id(), new_id()
    await timelines.follow_created(follower_id=reader, followee_id=author)
    posts = [new_id() for _ in range(store.max_posts + 10)]
    for post in posts:
        await timelines.post_created(post_id=post, author_id=author)
    assert await _home(timelines, reader) == sorted(posts, reverse=True)[: store.max_posts]


async def test_a_stale_entry_of_an_unfollowed_author_is_not_shown(
    timelines: Timelines, store: TimelineStore, new_id: Callable[[], int]
) -> None:
    """The race a fan-out can lose to an unfollow: the post lands after the removal."""
    reader, author, post = new_id(), new_id(), new_id()
    await timelines.follow_created(follower_id=reader, followee_id=author)
    await _home(timelines, reader)
    await timelines.post_created(post_id=post, author_id=author)
    await timelines.follow_deleted(follower_id=reader, followee_id=author)
    await store.add([reader], [post])
    page = await timelines.home(reader, EVERYTHING)
    assert page.post_ids == []
    assert page.scanned == [post]


async def test_without_redis_the_database_answers(
    build_timelines: Callable[..., Timelines],
    redis: Redis,
    new_id: Callable[[], int],
    store: TimelineStore,
) -> None:
    timelines = build_timelines(celebrity_follower_threshold=0)  # nothing fanned out
    reader, author = new_id(), new_id()
    await timelines.follow_created(follower_id=reader, followee_id=author)
    posts = [new_id() for _ in range(5)]
    for post in posts:
        await timelines.post_created(post_id=post, author_id=author)

    unreachable = Redis(host="127.0.0.1", port=1, retry=Retry(NoBackoff(), retries=0))
    try:
        offline = Timelines(
            session_factory=timelines.session_factory,
            reads=timelines.reads,
            store=TimelineStore(
                unreachable, key_prefix=store.key_prefix, max_posts=50, active_seconds=60
            ),
            cache=timelines.cache,
            celebrity_follower_threshold=0,
            fanout_batch_size=10,
        )
        assert await _home(offline, reader, Window(limit=3)) == sorted(posts, reverse=True)[:3]
        assert await _home(
            offline, reader, Window(limit=10, newer_than=posts[1], from_oldest=True)
        ) == sorted(posts[2:], reverse=True)
    finally:
        await unreachable.aclose()
