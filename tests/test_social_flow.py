"""The whole system in one process: three services, their workers and the event backbone.

Two people sign up and sign in, Ada follows Bob, Bob posts "hello @ada #terrascale", and then:
Ada is among Bob's followers, the post is on Bob's timeline with the mention resolved to Ada's
id, and a consumer group of this test sees the post.created event exactly once in effect.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import AsyncGenerator, Awaitable, Callable, Iterator
from contextlib import AsyncExitStack, ExitStack
from dataclasses import dataclass

import pytest
from alembic import command
from httpx import AsyncClient, Response
from sqlalchemy import text
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from terrascale.common.events import ConsumerRunner, Envelope, EventSettings, connect_bus
from terrascale.common.keys import generate_private_key_pem, load_private_key, public_key_pem
from terrascale.common.migrations import alembic_config
from terrascale.common.testing.helpers import free_port, serve_app
from terrascale.common.testing.plugin import ServerAddresses, fresh_database
from terrascale.graph import app as graph_app
from terrascale.graph.cli import SCRIPT_LOCATION as GRAPH_MIGRATIONS
from terrascale.graph.config import GraphSettings
from terrascale.posts import app as post_app
from terrascale.posts.cli import SCRIPT_LOCATION as POST_MIGRATIONS
from terrascale.posts.config import PostSettings
from terrascale.users import app as user_app
from terrascale.users.cli import SCRIPT_LOCATION as USER_MIGRATIONS
from terrascale.users.config import UserSettings

MIGRATIONS = {"users": USER_MIGRATIONS, "graph": GRAPH_MIGRATIONS, "posts": POST_MIGRATIONS}


@pytest.fixture(scope="module")
def databases(test_servers: ServerAddresses) -> Iterator[dict[str, URL]]:
    with ExitStack() as stack:
        urls: dict[str, URL] = {}
        for name, location in MIGRATIONS.items():
            url = stack.enter_context(
                fresh_database(test_servers.postgres, prefix=f"test_e2e_{name}")
            )
            command.upgrade(alembic_config(script_location=location, database_url=url), "head")
            urls[name] = url
        yield urls


@dataclass
class System:
    """HTTP clients of the three services, all sharing one event backbone."""

    users: AsyncClient
    graph: AsyncClient
    posts: AsyncClient
    user_settings: UserSettings
    posts_database: URL

    async def wait_until_posts_know(self, user_id: int, seconds: float = 15) -> None:
        engine = create_async_engine(self.posts_database, poolclass=NullPool)
        try:
            for _ in range(int(seconds * 10)):
                async with engine.connect() as connection:
                    statement = text("SELECT 1 FROM known_user WHERE id = :id")
                    if await connection.scalar(statement, {"id": user_id}):
                        return
                await asyncio.sleep(0.1)
        finally:
            await engine.dispose()
        pytest.fail(f"the post service never learnt of user {user_id}")


@pytest.fixture
async def system(
    databases: dict[str, URL], test_servers: ServerAddresses, redis_key_prefix: str
) -> AsyncGenerator[System]:
    private_pem = generate_private_key_pem()
    shared: dict[str, object] = {
        "redis_host": test_servers.redis.host,
        "redis_port": test_servers.redis.port,
        "redis_db": test_servers.redis.db,
        "jwt_public_key": public_key_pem(load_private_key(private_pem)),
        "log_level": "WARNING",
    }

    def url(name: str) -> str:
        return databases[name].render_as_string(hide_password=False)

    # model_validate skips the environment: these settings are exactly what is written here.
    events = EventSettings.model_validate({"event_key_prefix": redis_key_prefix})
    users = UserSettings.model_validate(
        shared
        | {
            "database_url": url("users"),
            "jwt_private_key": private_pem,
            "cache_key_prefix": f"{redis_key_prefix}users:",
        }
    )
    graph = GraphSettings.model_validate(
        shared
        | {
            "database_url": url("graph"),
            "cache_key_prefix": f"{redis_key_prefix}graph:",
            # Nothing listens here: users reach the graph through user.created events only.
            "user_service_url": f"http://127.0.0.1:{free_port()}",
        }
    )
    posts = PostSettings.model_validate(
        shared | {"database_url": url("posts"), "cache_key_prefix": f"{redis_key_prefix}posts:"}
    )
    async with AsyncExitStack() as stack:
        clients = [
            await stack.enter_async_context(serve_app(app))
            for app in (
                user_app.create_app(users, events),
                graph_app.create_app(graph, events),
                post_app.create_app(posts, events),
            )
        ]
        for worker in (
            graph_app.create_worker(graph, events),
            post_app.create_worker(posts, events),
        ):
            await stack.enter_async_context(serve_app(worker))
        yield System(*clients, user_settings=users, posts_database=databases["posts"])


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
