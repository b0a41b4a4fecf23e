"""The wake-up channel's pieces: channel names, dispatch to the right streams, and failures
that are logged instead of raised."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any, cast

from redis.asyncio import Redis

from terrascale.common.testing.helpers import free_port
from terrascale.common.testing.plugin import ServerAddresses
from terrascale.notifications.config import NotificationSettings
from terrascale.notifications.wakeups import (
    WakeUpHub,
    WakeUpPublisher,
    channel_for,
    channel_pattern,
    create_subscription_redis,
)


def test_channel_names_and_a_pattern_that_matches_the_prefix_literally() -> None:
    assert channel_for("terrascale:notifications:", 42) == "terrascale:notifications:stream:42"
    assert channel_pattern("terrascale:notifications:") == "terrascale:notifications:stream:*"
    assert channel_pattern("a*b?[c]\\:") == "a\\*b\\?\\[c\\]\\\\:stream:*"


async def test_wake_ups_reach_only_the_recipients_streams_and_coalesce() -> None:
    hub = WakeUpHub(cast(Any, None), key_prefix="p:")
    with hub.subscribe(7) as mine, hub.subscribe(7) as my_other_tab, hub.subscribe(8) as theirs:
        for _ in range(3):
            hub._dispatch({"channel": b"p:stream:7", "data": b"1"})
        hub._dispatch({"channel": b"p:stream:not-a-number", "data": b"1"})
        hub._dispatch({"channel": "p:stream:99", "data": b"1"})  # nobody listening
        await asyncio.wait_for(mine.wait(5), 1)
        await asyncio.wait_for(my_other_tab.wait(5), 1)
        # Three wake-ups were one: the next wait times out.
        assert await _woken(mine) is False
        assert await _woken(theirs) is False
        assert hub.open_streams == 3
    assert hub.open_streams == 0


async def _woken(subscription: Any) -> bool:
    started = asyncio.get_running_loop().time()
    await subscription.wait(0.05)
    return asyncio.get_running_loop().time() - started < 0.04


async def test_the_hub_retries_an_unreachable_redis_and_wakes_streams_on_each_change() -> None:
    settings = NotificationSettings(_env_file=None, redis_port=free_port())  # pyright: ignore[reportCallIssue]
    redis = create_subscription_redis(settings)
    hub = WakeUpHub(redis, key_prefix="p:")
    stop = asyncio.Event()
    with hub.subscribe(1) as subscription:
        hub.connected = True  # as if it had been up: losing it must wake the stream
        running = asyncio.create_task(hub.run(stop))
        await asyncio.wait_for(subscription.wait(5), 2)
        assert hub.connected is False
        stop.set()
        await asyncio.wait_for(running, 3)
    await redis.aclose()


async def test_a_failed_announcement_is_logged_not_raised() -> None:
    redis = Redis(port=free_port(), socket_connect_timeout=0.2)
    try:
        await WakeUpPublisher(redis, key_prefix="p:").announce([(1, 1), (2, 5)])
        await WakeUpPublisher(redis, key_prefix="p:").announce([])
    finally:
        await redis.aclose()


async def test_the_hub_resumes_when_redis_comes_back(test_servers: ServerAddresses) -> None:
    down = NotificationSettings(_env_file=None, redis_port=free_port())  # pyright: ignore[reportCallIssue]
    address = test_servers.redis
    up = NotificationSettings(
        _env_file=None,  # pyright: ignore[reportCallIssue]
        redis_host=address.host,
        redis_port=address.port,
        redis_db=address.db,
    )
    unreachable, reachable = create_subscription_redis(down), create_subscription_redis(up)
    hub = WakeUpHub(unreachable, key_prefix=f"test:{uuid.uuid4().hex[:12]}:")
    stop = asyncio.Event()
    running = asyncio.create_task(hub.run(stop))
    try:
        with hub.subscribe(5) as subscription:
            await asyncio.sleep(0.3)
            assert hub.connected is False
            hub.redis = reachable  # Redis is back, at the address the next attempt uses
            await asyncio.wait_for(subscription.wait(5), 3)  # the reconnect wakes every stream
            assert hub.connected is True
            publisher = WakeUpPublisher(reachable, key_prefix=hub.key_prefix)
            await publisher.announce([(5, 1)])
            await asyncio.wait_for(subscription.wait(5), 2)
    finally:
        stop.set()
        await asyncio.wait_for(running, 3)
        await unreachable.aclose()
        await reachable.aclose()
