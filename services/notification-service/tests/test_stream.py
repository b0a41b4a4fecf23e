"""The live stream over a real HTTP server: a mention published on the event bus reaches a
connected client within a second, a reconnect with Last-Event-ID misses nothing and repeats
nothing, idle streams send heartbeats, and streams keep working (by polling) without Redis."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any, cast

import httpx
import pytest
from httpx import AsyncClient
from httpx_sse import ServerSentEvent, aconnect_sse
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from terrascale.common.events import Envelope, EventBus, EventSettings, PostCreated
from terrascale.common.testing.helpers import PROBLEM_JSON, free_port, serve_app
from terrascale.notifications import stream as notification_stream
from terrascale.notifications.app import create_app, create_worker
from terrascale.notifications.config import NotificationSettings
from terrascale.notifications.rules import Kind
from terrascale.notifications.wakeups import WakeUpHub

from .conftest import Auth, Eventually, MakeSettings, ServeHttp, Sql, Store


def mention(author: int, *mentioned: int) -> Envelope:
    post = PostCreated(post_id=author + 1, author_id=author, text="hey", mention_ids=[*mentioned])
    return Envelope.wrap(post, source="post-service")


@asynccontextmanager
async def open_stream(
    base_url: str, headers: dict[str, str]
) -> AsyncGenerator[AsyncIterator[ServerSentEvent]]:
    async with (
        httpx.AsyncClient(base_url=base_url, timeout=10) as client,
        aconnect_sse(client, "GET", "/notifications/stream", headers=headers) as source,
    ):
        assert source.response.status_code == 200
        assert source.response.headers["content-type"].startswith("text/event-stream")
        events = source.aiter_sse()
        try:
            yield events
        finally:
            await events.aclose()


async def next_event(events: AsyncIterator[ServerSentEvent], seconds: float) -> ServerSentEvent:
    async with asyncio.timeout(seconds):
        return await anext(events)


async def test_a_published_mention_arrives_live_and_a_reconnect_misses_nothing(
    *,
    settings: NotificationSettings,
    event_settings: EventSettings,
    bus: EventBus,
    serve_http: ServeHttp,
    new_id: Callable[[], int],
    auth: Auth,
    sql: Sql,
    eventually: Eventually,
) -> None:
    me, author = new_id(), new_id()
    async with (
        serve_app(create_worker(settings, event_settings)),
        serve_http(create_app(settings)) as base_url,
    ):
        async with open_stream(base_url, auth(me)) as events:
            sent = mention(author, me)
            await bus.publish([sent])
            event = await next_event(events, 1.0)
        assert (event.event, event.id) == ("notification", "1")
        assert json.loads(event.data) == {
            "id": "1",
            "kind": "mention",
            "actor_id": str(author),
            "post_id": str(author + 1),
            "created_at": sent.time.isoformat().replace("+00:00", "Z"),
            "read": False,
        }

        # Offline: two more arrive.
        await bus.publish([mention(new_id(), me), mention(new_id(), me)])

        async def three_stored() -> bool:
            rows = await sql("SELECT 1 FROM notification WHERE recipient_id = :r", r=me)
            return len(rows) == 3

        await eventually(three_stored)

        headers = {**auth(me), "Last-Event-ID": event.id}
        async with open_stream(base_url, headers) as events:
            missed = [await next_event(events, 1.0) for _ in range(2)]
            await bus.publish([mention(new_id(), me)])
            live = await next_event(events, 1.0)
            with pytest.raises(TimeoutError):  # and nothing after it
                await next_event(events, 0.3)
        assert [e.id for e in [*missed, live]] == ["2", "3", "4"]


async def test_without_last_event_id_only_new_ones_are_sent(
    settings: NotificationSettings,
    serve_http: ServeHttp,
    store: Store,
    new_id: Callable[[], int],
    auth: Auth,
) -> None:
    me = new_id()
    await store(me)
    await store(me)
    app = create_app(settings)
    async with serve_http(app) as base_url, open_stream(base_url, auth(me)) as events:
        await store(me, kind=Kind.FOLLOW)
        event = await next_event(events, 2.0)
    assert event.id == "3"
    assert json.loads(event.data)["kind"] == "follow"


async def test_a_last_event_id_beyond_the_newest_is_clamped(
    settings: NotificationSettings,
    serve_http: ServeHttp,
    store: Store,
    new_id: Callable[[], int],
    auth: Auth,
) -> None:
    me = new_id()
    await store(me)
    headers = {**auth(me), "Last-Event-ID": "1000"}
    async with serve_http(create_app(settings)) as base_url, open_stream(base_url, headers) as ev:
        await store(me)
        assert (await next_event(ev, 2.0)).id == "2"


async def test_idle_streams_send_heartbeat_comments(
    make_settings: MakeSettings,
    serve_http: ServeHttp,
    new_id: Callable[[], int],
    auth: Auth,
) -> None:
    app = create_app(make_settings(notification_heartbeat_seconds=0.2))
    async with (
        serve_http(app) as base_url,
        httpx.AsyncClient(base_url=base_url) as client,
        client.stream("GET", "/notifications/stream", headers=auth(new_id())) as response,
    ):
        lines = response.aiter_lines()
        async with asyncio.timeout(2):
            heartbeats = 0
            while heartbeats < 2:
                if (await anext(lines)).startswith(": heartbeat"):
                    heartbeats += 1


async def test_closing_a_stream_releases_its_subscription(
    settings: NotificationSettings,
    serve_http: ServeHttp,
    new_id: Callable[[], int],
    auth: Auth,
    eventually: Eventually,
) -> None:
    app = create_app(settings)
    async with serve_http(app) as base_url:
        hub: WakeUpHub = app.state.wake_up_hub
        idle_tasks = asyncio.all_tasks()
        async with open_stream(base_url, auth(new_id())), open_stream(base_url, auth(new_id())):

            async def both_open() -> bool:
                return hub.open_streams == 2

            await eventually(both_open)
            # The streams' own tasks (responses, pings, disconnect listeners), less sse-starlette's
            # one shutdown watcher per loop, which starts with the first stream and stays.
            stream_tasks = {
                task
                for task in asyncio.all_tasks() - idle_tasks
                if getattr(task.get_coro(), "__name__", "") != "_shutdown_watcher"
            }
            assert stream_tasks

        async def all_released() -> bool:
            return hub.open_streams == 0 and all(task.done() for task in stream_tasks)

        await eventually(all_released)


async def test_without_redis_streams_poll_the_database(
    make_settings: MakeSettings,
    serve_http: ServeHttp,
    store: Store,
    new_id: Callable[[], int],
    auth: Auth,
) -> None:
    me = new_id()
    app = create_app(
        make_settings(
            redis_port=free_port(),
            notification_poll_seconds=0.2,
            notification_heartbeat_seconds=0.3,
        )
    )
    async with serve_http(app) as base_url:
        async with httpx.AsyncClient(base_url=base_url) as client:
            ready = await client.get("/ready")
            assert ready.status_code == 503
            assert ready.json()["checks"]["redis"] != "ok"
        assert app.state.wake_up_hub.connected is False
        async with open_stream(base_url, auth(me)) as events:
            await store(me)
            assert (await next_event(events, 1.5)).id == "1"


@pytest.mark.parametrize("value", ["abc", "-1", "1.5", "99999999999999999999"])
async def test_an_invalid_last_event_id_is_422_naming_the_header(
    client: AsyncClient, new_id: Callable[[], int], auth: Auth, value: str
) -> None:
    response = await client.get(
        "/notifications/stream", headers={**auth(new_id()), "Last-Event-ID": value}
    )
    assert response.status_code == 422
    assert response.headers["content-type"] == PROBLEM_JSON
    assert "header.last-event-id" in response.json()["detail"]


async def test_a_database_outage_mid_stream_is_waited_out(
    engine: AsyncEngine, store: Store, new_id: Callable[[], int], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The loop itself: a failed read keeps the stream open and the next turn catches up, in
    batches."""
    monkeypatch.setattr(notification_stream, "BATCH_SIZE", 2)
    me = new_id()
    for _ in range(3):
        await store(me)
    real = async_sessionmaker(engine, expire_on_commit=False)
    calls = 0

    def flaky() -> AsyncSession:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise ConnectionRefusedError("database down")
        return real()

    hub = WakeUpHub(cast(Any, None), key_prefix="unused:")
    items = notification_stream.follow(
        session_factory=cast(Any, flaky), hub=hub, recipient_id=me, after=0, poll_seconds=0.05
    )
    try:
        async with asyncio.timeout(2):
            sent = [await anext(items) for _ in range(3)]
    finally:
        await items.aclose()
    assert [stored.seq for stored in sent] == [1, 2, 3]
    assert calls == 3  # the failed read, then a full batch of two and the rest
    assert hub.open_streams == 0
