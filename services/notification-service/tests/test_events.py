"""Events in: the worker turns follow.created and post.created from the bus into notifications,
once each however often they are delivered, and wakes the recipients' streams."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
from httpx import AsyncClient
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker

from terrascale.common.events import (
    ConsumerRunner,
    Envelope,
    EventBus,
    EventSettings,
    FollowCreated,
    FollowDeleted,
    PostCreated,
    connect_bus,
)
from terrascale.common.testing.helpers import serve_app
from terrascale.common.testing.plugin import ServerAddresses
from terrascale.notifications.app import create_worker
from terrascale.notifications.config import NotificationSettings
from terrascale.notifications.consumer import (
    CATEGORIES,
    CONSUMER_GROUP,
    notification_events_handler,
)
from terrascale.notifications.repository import NotificationRepository
from terrascale.notifications.wakeups import WakeUpPublisher, channel_for

from .conftest import Auth, Eventually, Sql


def follow(follower: int, followee: int) -> Envelope:
    return Envelope.wrap(FollowCreated(follower_id=follower, followee_id=followee), source="graph")


def unfollow(follower: int, followee: int) -> Envelope:
    return Envelope.wrap(FollowDeleted(follower_id=follower, followee_id=followee), source="graph")


def posted(post_id: int, author: int, **fields: Any) -> Envelope:
    data = PostCreated(post_id=post_id, author_id=author, text="hi", **fields)
    return Envelope.wrap(data, source="post-service")


async def stored(sql: Sql, recipient: int) -> list[tuple[int, str, int, int]]:
    rows = await sql(
        "SELECT seq, kind, actor_id, subject_id FROM notification "
        "WHERE recipient_id = :r ORDER BY seq",
        r=recipient,
    )
    return [tuple(row) for row in rows]


async def test_duplicates_and_refollows_make_one_notification_each(
    *,
    settings: NotificationSettings,
    event_settings: EventSettings,
    bus: EventBus,
    new_id: Callable[[], int],
    sql: Sql,
    eventually: Eventually,
) -> None:
    star, fan, post_id = new_id(), new_id(), new_id()
    first = follow(fan, star)
    mention = posted(post_id, fan, mention_ids=[star])
    # Follow events share the follower's partition, in order: a duplicate (a relay retry),
    # unfollow and follow again, and a mention in the post category.
    async with serve_app(create_worker(settings, event_settings)):
        await bus.publish([first, first, unfollow(fan, star), follow(fan, star), mention, mention])

        async def both_stored() -> bool:
            return len(await stored(sql, star)) == 2

        await eventually(both_stored)
        await asyncio.sleep(0.3)  # the redeliveries had their chance to add more
    rows = await stored(sql, star)
    # The two categories are consumed independently, so either may come first.
    assert [seq for seq, *_ in rows] == [1, 2]
    assert {tuple(fact) for _, *fact in rows} == {("follow", fan, fan), ("mention", fan, post_id)}
    [(last_seq, last_read)] = await sql(
        "SELECT last_seq, last_read_seq FROM notification_state WHERE recipient_id = :r", r=star
    )
    assert (last_seq, last_read) == (2, 0)
    assert await bus.dead_letters("follow") == []
    assert await bus.dead_letters("post") == []


async def test_reply_and_mentions_reach_each_recipient_once_and_show_in_the_api(
    *,
    settings: NotificationSettings,
    event_settings: EventSettings,
    bus: EventBus,
    new_id: Callable[[], int],
    sql: Sql,
    client: AsyncClient,
    auth: Auth,
    eventually: Eventually,
) -> None:
    author, parent_author, friend, post_id = new_id(), new_id(), new_id(), new_id()
    reply = posted(
        post_id,
        author,
        reply_to=new_id(),
        reply_to_author_id=parent_author,
        mention_ids=[parent_author, friend, author],
    )
    async with serve_app(create_worker(settings, event_settings)):
        await bus.publish([reply])

        async def handled() -> bool:
            return bool(await stored(sql, friend)) and bool(await stored(sql, parent_author))

        await eventually(handled)
    assert await stored(sql, parent_author) == [(1, "reply", author, post_id)]
    assert await stored(sql, friend) == [(1, "mention", author, post_id)]
    assert await stored(sql, author) == []
    [item] = (await client.get("/notifications", headers=auth(parent_author))).json()
    assert item["kind"] == "reply"
    assert item["post_id"] == str(post_id)
    assert item["created_at"] == reply.time.isoformat().replace("+00:00", "Z")


async def test_new_notifications_are_announced_on_the_recipients_channel(
    settings: NotificationSettings,
    event_settings: EventSettings,
    bus: EventBus,
    new_id: Callable[[], int],
    test_servers: ServerAddresses,
) -> None:
    star, fan = new_id(), new_id()
    address = test_servers.redis
    listener = Redis(host=address.host, port=address.port, db=address.db)
    pubsub = listener.pubsub()
    await pubsub.subscribe(channel_for(settings.cache_key_prefix, star))
    try:
        async with serve_app(create_worker(settings, event_settings)):
            await bus.publish([follow(fan, star), follow(fan, star)])
            message = None
            async with asyncio.timeout(10):
                while message is None:
                    message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1)
            assert message["data"] == b"1"
            # The duplicate created nothing, so it announced nothing.
            await asyncio.sleep(0.3)
            assert await pubsub.get_message(ignore_subscribe_messages=True, timeout=0.1) is None
    finally:
        await pubsub.aclose()
        await listener.aclose()


async def test_invalid_events_are_dead_lettered(
    settings: NotificationSettings,
    event_settings: EventSettings,
    bus: EventBus,
    new_id: Callable[[], int],
    eventually: Eventually,
) -> None:
    bogus = posted(new_id(), new_id()).model_copy(update={"data": {"post_id": "x"}})
    async with serve_app(create_worker(settings, event_settings)):
        await bus.publish([bogus])

        async def dead() -> bool:
            return bool(await bus.dead_letters("post"))

        await eventually(dead)


async def test_a_worker_killed_mid_batch_loses_and_doubles_nothing(
    *,
    monkeypatch: pytest.MonkeyPatch,
    settings: NotificationSettings,
    event_settings: EventSettings,
    engine: AsyncEngine,
    test_servers: ServerAddresses,
    new_id: Callable[[], int],
    sql: Sql,
) -> None:
    """A post mentioning 30 people; the worker dies after storing 10 of them, inside its
    transaction. Another worker takes the event over: each person ends with one mention."""
    # A dead worker's partitions and messages are taken over after this idle time.
    event_settings = event_settings.model_copy(update={"event_claim_idle_seconds": 1.0})
    bus = await connect_bus(event_settings, settings)
    author, post_id = new_id(), new_id()
    mentioned = [new_id() for _ in range(30)]
    session_factory = async_sessionmaker(engine, expire_on_commit=False)
    address = test_servers.redis
    redis = Redis(host=address.host, port=address.port, db=address.db)
    publisher = WakeUpPublisher(redis, key_prefix=event_settings.event_key_prefix)
    stalled = asyncio.Event()
    real_add = NotificationRepository.add
    added = 0

    async def add_then_die(self: NotificationRepository, draft: Any) -> int | None:
        nonlocal added
        if added == 10:
            stalled.set()
            await asyncio.Event().wait()
        added += 1
        return await real_add(self, draft)

    def runner(name: str) -> ConsumerRunner:
        return ConsumerRunner(
            bus,
            group=CONSUMER_GROUP,
            categories=CATEGORIES,
            handler=notification_events_handler(session_factory, publisher),
            settings=event_settings,
            consumer=name,
        )

    monkeypatch.setattr(NotificationRepository, "add", add_then_die)
    crashing = asyncio.create_task(runner("first").run_until(asyncio.Event()))
    await bus.publish([posted(post_id, author, mention_ids=mentioned)])
    await asyncio.wait_for(stalled.wait(), timeout=10)
    crashing.cancel()  # a crash: the transaction rolls back, nothing is acknowledged
    await asyncio.gather(crashing, return_exceptions=True)
    monkeypatch.setattr(NotificationRepository, "add", real_add)

    stop = asyncio.Event()
    takeover = asyncio.create_task(runner("second").run_until(stop))
    try:
        for _ in range(200):
            rows = await sql("SELECT count(*) FROM notification WHERE subject_id = :p", p=post_id)
            if rows[0][0] == len(mentioned):
                break
            await asyncio.sleep(0.05)
    finally:
        stop.set()
        await takeover
        await redis.aclose()
        await bus.close()
    for recipient in mentioned:
        assert await stored(sql, recipient) == [(1, "mention", author, post_id)]
