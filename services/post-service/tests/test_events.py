"""``post.created`` and ``post.deleted`` are written to the outbox in the transaction of the
change, once per change, and the relay publishes them."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable

from fastapi import FastAPI
from httpx import AsyncClient

from terrascale.common.events import (
    Envelope,
    EventSettings,
    PostCreated,
    PostDeleted,
    connect_bus,
    partition_for,
)

Headers = dict[str, str]
OutboxEvents = Callable[[str], Awaitable[list[Envelope]]]


async def test_post_created_is_recorded_once_per_post(
    client: AsyncClient,
    author: int,
    author_headers: Headers,
    remember_user: Callable[..., Awaitable[tuple[int, str]]],
    outbox_events: OutboxEvents,
) -> None:
    ada_id, ada = await remember_user()
    parent = (await client.post("/posts", json={"text": "parent"}, headers=author_headers)).json()
    headers = {**author_headers, "Idempotency-Key": str(uuid.uuid4())}
    body = {"text": f"hi @{ada} #One #two", "reply_to": parent["id"]}
    post = (await client.post("/posts", json=body, headers=headers)).json()
    await client.post("/posts", json=body, headers=headers)  # a replay records nothing

    [event] = await outbox_events(post["id"])
    assert (event.type, event.source, event.subject) == ("post.created", "post-service", post["id"])
    assert event.data_as(PostCreated) == PostCreated(
        post_id=int(post["id"]),
        author_id=author,
        text=body["text"],
        reply_to=int(parent["id"]),
        reply_to_author_id=author,  # the parent is the author's own post
        mention_ids=[ada_id],
        mention_usernames=[ada],
        hashtags=["one", "two"],
    )


async def test_post_deleted_is_recorded_once(
    client: AsyncClient, author: int, author_headers: Headers, outbox_events: OutboxEvents
) -> None:
    post = (await client.post("/posts", json={"text": "bye"}, headers=author_headers)).json()
    await client.delete(f"/posts/{post['id']}", headers=author_headers)
    await client.delete(f"/posts/{post['id']}", headers=author_headers)  # 404, records nothing
    created, deleted = await outbox_events(post["id"])
    assert created.type == "post.created"
    assert deleted.data_as(PostDeleted) == PostDeleted(post_id=int(post["id"]), author_id=author)


async def test_failed_requests_record_nothing(
    client: AsyncClient,
    author_headers: Headers,
    new_user_id: Callable[[], int],
    auth: Callable[[int], Headers],
    outbox_events: OutboxEvents,
) -> None:
    post = (await client.post("/posts", json={"text": "mine"}, headers=author_headers)).json()
    forbidden = await client.delete(f"/posts/{post['id']}", headers=auth(new_user_id()))
    assert forbidden.status_code == 403
    assert [event.type for event in await outbox_events(post["id"])] == ["post.created"]


async def test_the_relay_publishes_post_events(
    app: FastAPI, client: AsyncClient, author_headers: Headers, event_settings: EventSettings
) -> None:
    post = (await client.post("/posts", json={"text": "published"}, headers=author_headers)).json()
    await client.delete(f"/posts/{post['id']}", headers=author_headers)
    bus = await connect_bus(event_settings, app.state.settings)
    published: list[Envelope] = []
    try:
        partition = partition_for(post["id"], event_settings.event_partitions)
        for _ in range(200):  # the relay polls every 10 ms here
            history = await bus.history("post", partition)
            published = [Envelope.from_json(raw) for raw in history]
            published = [event for event in published if event.subject == post["id"]]
            if len(published) == 2:
                break
            await asyncio.sleep(0.05)
    finally:
        await bus.close()
    assert [(event.type, event.source) for event in published] == [
        ("post.created", "post-service"),
        ("post.deleted", "post-service"),
    ]
