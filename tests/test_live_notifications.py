"""A live notification across the whole system: Ada holds the notification stream open, Bob
posts a mention of her through the Post Service, and the event travels outbox, relay, bus,
notification worker, PostgreSQL, Redis wake-up and Server-Sent Events to her client, within a
second of Bob's request returning. She then reconnects with Last-Event-ID and misses nothing."""

from __future__ import annotations

import asyncio
import json
import uuid

import httpx
from httpx_sse import aconnect_sse

from e2e_system import System


async def _sign_up(system: System, name: str) -> str:
    response = await system.users.post("/users/", json={"username": name})
    assert response.status_code == 201, response.text
    return response.json()["id"]


async def test_a_mention_reaches_a_connected_client_within_a_second(system: System) -> None:
    suffix = uuid.uuid4().hex[:8]
    ada = await _sign_up(system, f"ada_{suffix}")
    bob = await _sign_up(system, f"bob_{suffix}")
    await system.wait_until_posts_know(ada)
    loop = asyncio.get_running_loop()

    async with (
        httpx.AsyncClient(base_url=str(system.notifications.base_url), timeout=10) as client,
        aconnect_sse(client, "GET", "/notifications/stream", headers=system.auth(ada)) as source,
    ):
        assert source.response.status_code == 200
        events = source.aiter_sse()
        posted = await system.posts.post(
            "/posts", json={"text": f"hello @ada_{suffix}"}, headers=system.auth(bob)
        )
        assert posted.status_code == 201, posted.text
        sent_at = loop.time()
        event = await asyncio.wait_for(anext(events), timeout=1.0)
        delay = loop.time() - sent_at
        await events.aclose()
    notification = json.loads(event.data)
    assert event.event == "notification"
    assert (notification["kind"], notification["actor_id"]) == ("mention", bob)
    assert notification["post_id"] == posted.json()["id"]
    assert delay < 1.0

    # Another post while she is away; reconnecting from the last id she saw brings it.
    missed = await system.posts.post(
        "/posts", json={"text": f"still there, @ada_{suffix}?"}, headers=system.auth(bob)
    )
    assert missed.status_code == 201
    headers = system.auth(ada) | {"Last-Event-ID": event.id}
    async with (
        httpx.AsyncClient(base_url=str(system.notifications.base_url), timeout=10) as client,
        aconnect_sse(client, "GET", "/notifications/stream", headers=headers) as source,
    ):
        events = source.aiter_sse()
        resumed = await asyncio.wait_for(anext(events), timeout=5.0)
        await events.aclose()
    assert int(resumed.id) == int(event.id) + 1
    assert json.loads(resumed.data)["post_id"] == missed.json()["id"]
