"""The whole system in one process (tests/conftest.py): services, workers, event backbone.

Two people sign up and sign in, Ada follows Bob, Bob posts "hello @ada #terrascale", and then:
Ada is among Bob's followers, the post is on Bob's timeline with the mention resolved to Ada's
id, and a consumer group of this test sees the post.created event exactly once in effect.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable

from httpx import Response

from e2e_system import System
from terrascale.common.events import ConsumerRunner, Envelope, EventSettings, connect_bus


async def eventually(
    attempt: Callable[[], Awaitable[Response]], *, seconds: float = 15
) -> Response:
    """Retry until the answer is a success: events reach other services asynchronously."""
    deadline = asyncio.get_running_loop().time() + seconds
    while True:
        response = await attempt()
        if response.is_success or asyncio.get_running_loop().time() > deadline:
            return response
        await asyncio.sleep(0.1)


async def test_sign_up_follow_post_and_read(system: System, redis_key_prefix: str) -> None:
    suffix = uuid.uuid4().hex[:8]
    ada, bob = f"ada_{suffix}", f"bob_{suffix}"
    ids: dict[str, str] = {}
    tokens: dict[str, str] = {}
    for name in (ada, bob):
        created = await system.users.post(
            "/users/", json={"username": name, "password": "pw-" + suffix}
        )
        assert created.status_code == 201
        ids[name] = created.json()["id"]
        signed_in = await system.users.post(
            "/auth/token", data={"username": name, "password": "pw-" + suffix}
        )
        assert signed_in.status_code == 200
        tokens[name] = signed_in.json()["access_token"]

    # A test consumer group on the post stream, counting what it sees by event id.
    seen: Counter[str] = Counter()
    events = EventSettings.model_validate({"event_key_prefix": redis_key_prefix})

    async def count(envelope: Envelope) -> None:
        seen[f"{envelope.type}:{envelope.subject}"] += 1

    bus = await connect_bus(events, system.user_settings)
    stop = asyncio.Event()
    runner = ConsumerRunner(
        bus, group="e2e-test", categories=["post"], handler=count, settings=events
    )
    consuming = asyncio.create_task(runner.run_until(stop))
    try:
        follow = await eventually(
            lambda: system.graph.put(
                f"/users/{ids[ada]}/following/{ids[bob]}",
                headers={"Authorization": f"Bearer {tokens[ada]}"},
            )
        )
        assert follow.status_code == 200, follow.text
        assert follow.json()["following"] is True

        # Mentions resolve against the post service's copy of the users, which user.created
        # events fill: wait until it knows Ada, as a client would see it a moment later.
        await system.wait_until_posts_know(int(ids[ada]))
        created = await system.posts.post(
            "/posts",
            json={"text": f"hello @{ada} #terrascale"},
            headers={"Authorization": f"Bearer {tokens[bob]}"},
        )
        assert created.status_code == 201, created.text
        post_body = created.json()
        assert [mention["user_id"] for mention in post_body["mentions"]] == [ids[ada]]
        assert post_body["hashtags"] == ["terrascale"]

        followers = await system.graph.get(f"/users/{ids[bob]}/followers")
        assert [item["user_id"] for item in followers.json()["items"]] == [ids[ada]]
        timeline = await system.posts.get(f"/users/{ids[bob]}/posts")
        assert post_body["id"] in [item["id"] for item in timeline.json()]

        key = f"post.created:{post_body['id']}"
        for _ in range(150):
            if seen[key]:
                break
            await asyncio.sleep(0.1)
        await asyncio.sleep(0.5)  # anything delivered twice would arrive by now
        assert seen[key] == 1
    finally:
        stop.set()
        await asyncio.wait_for(consuming, 10)
        await bus.close()
