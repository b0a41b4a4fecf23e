"""GET /timelines/home through HTTP: authentication, validation, paging links, hydration (and
what ends a cached copy) and the answer when the Post Service is down."""

from __future__ import annotations

from collections.abc import Callable

import httpx
from fastapi import FastAPI, Query
from httpx import AsyncClient
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from terrascale.common.testing.helpers import PROBLEM_JSON
from terrascale.timelines.hydration import Hydrator
from terrascale.timelines.service import Timelines
from terrascale.timelines.window import Window

Auth = Callable[[int], dict[str, str]]


async def _follow_with_posts(
    app: FastAPI, reader: int, new_id: Callable[[], int], count: int
) -> list[int]:
    timelines: Timelines = app.state.timelines
    author = new_id()
    await timelines.follow_created(follower_id=reader, followee_id=author)
    posts = [new_id() for _ in range(count)]
    for post in posts:
        await timelines.post_created(post_id=post, author_id=author)
    return sorted(posts, reverse=True)


async def test_no_token_is_401(client: AsyncClient) -> None:
    response = await client.get("/timelines/home")
    assert response.status_code == 401
    assert response.headers["content-type"] == PROBLEM_JSON


async def test_bad_parameters_are_422_naming_them(
    client: AsyncClient, auth: Auth, new_id: Callable[[], int]
) -> None:
    headers = auth(new_id())
    for query, field in [
        ("limit=0", "query.limit"),
        ("limit=41", "query.limit"),
        ("max_id=abc", "query.max_id"),
        ("since_id=-1", "query.since_id"),
        ("min_id=99999999999999999999", "query.min_id"),
    ]:
        response = await client.get(f"/timelines/home?{query}", headers=headers)
        assert response.status_code == 422, query
        assert response.headers["content-type"] == PROBLEM_JSON
        assert [error["field"] for error in response.json()["errors"]] == [field]


async def test_a_new_user_has_an_empty_timeline(
    client: AsyncClient, auth: Auth, new_id: Callable[[], int]
) -> None:
    response = await client.get("/timelines/home", headers=auth(new_id()))
    assert response.status_code == 200
    assert response.json() == []
    assert "link" not in response.headers


async def test_pages_are_hydrated_and_linked(
    *,
    app: FastAPI,
    client: AsyncClient,
    auth: Auth,
    new_id: Callable[[], int],
    upstream_app: Callable[[str], FastAPI],
) -> None:
    reader = new_id()
    posts = await _follow_with_posts(app, reader, new_id, 3)
    transport = httpx.ASGITransport(app=upstream_app("ok"))
    async with (
        httpx.AsyncClient(transport=transport, base_url="http://posts") as post_client,
        httpx.AsyncClient(transport=transport, base_url="http://users") as user_client,
    ):
        app.state.hydrator = Hydrator(
            posts=post_client, users=user_client, cache=app.state.timelines.cache, timeout_seconds=1
        )
        response = await client.get("/timelines/home?limit=2", headers=auth(reader))
    assert response.status_code == 200
    assert response.json() == []  # the upstream knows none of these ids: all left out
    link = response.headers["link"]
    assert f"max_id={posts[1]}" in link
    assert 'rel="next"' in link
    assert f"min_id={posts[0]}" in link


async def test_an_unreachable_post_service_is_503_with_retry_after(
    app: FastAPI, client: AsyncClient, auth: Auth, new_id: Callable[[], int]
) -> None:
    reader = new_id()
    await _follow_with_posts(app, reader, new_id, 1)
    response = await client.get("/timelines/home", headers=auth(reader))
    assert response.status_code == 503
    assert response.headers["content-type"] == PROBLEM_JSON
    assert response.headers["retry-after"] == "1"
    assert response.json()["type"] == "urn:terrascale:problem:post-service-unavailable"


class _Upstreams:
    """The Post and User Services' batch reads over a dict of posts and one of profiles, counting
    the calls; the test changes the dicts as the real services would change."""

    def __init__(self) -> None:
        self.posts: dict[str, str] = {}  # post id -> author id
        self.names: dict[str, str] = {}  # author id -> display name
        self.calls = 0
        self.app = FastAPI()
        self.app.get("/posts")(self.read_posts)
        self.app.get("/users")(self.read_users)

    async def read_posts(self, ids: str = Query()) -> list[dict[str, object]]:
        self.calls += 1
        return [
            {
                "id": post_id,
                "author_id": self.posts[post_id],
                "text": "hello",
                "reply_to": None,
                "mentions": [],
                "hashtags": [],
                "urls": [],
                "created_at": "2026-01-01T00:00:00Z",
            }
            for post_id in ids.split(",")
            if post_id in self.posts
        ]

    async def read_users(self, ids: str = Query()) -> list[dict[str, object]]:
        self.calls += 1
        return [
            {"id": user_id, "username": f"u{user_id}", "display_name": self.names[user_id]}
            for user_id in ids.split(",")
            if user_id in self.names
        ]


async def test_cached_copies_end_with_a_deletion_or_a_profile_change(
    *, app: FastAPI, client: AsyncClient, auth: Auth, new_id: Callable[[], int]
) -> None:
    reader = new_id()
    newer, older = await _follow_with_posts(app, reader, new_id, 2)
    timelines: Timelines = app.state.timelines
    upstreams = _Upstreams()
    author = str((await timelines.home(reader, Window(limit=1))).authors_of[newer])
    upstreams.posts = {str(newer): author, str(older): author}
    upstreams.names = {author: "Ada"}

    async def page() -> list[tuple[str, str]]:
        response = await client.get("/timelines/home", headers=auth(reader))
        assert response.status_code == 200
        return [(post["id"], post["author"]["display_name"]) for post in response.json()]

    transport = httpx.ASGITransport(app=upstreams.app)
    async with (
        httpx.AsyncClient(transport=transport, base_url="http://posts") as post_client,
        httpx.AsyncClient(transport=transport, base_url="http://users") as user_client,
    ):
        app.state.hydrator = Hydrator(
            posts=post_client, users=user_client, cache=timelines.cache, timeout_seconds=1
        )
        assert await page() == [(str(newer), "Ada"), (str(older), "Ada")]
        assert upstreams.calls == 2
        upstreams.names[author] = "Ada L."
        assert await page() == [(str(newer), "Ada"), (str(older), "Ada")]
        assert upstreams.calls == 2  # both served from the cache

        await timelines.author_updated(author_id=int(author))  # as on user.updated
        assert await page() == [(str(newer), "Ada L."), (str(older), "Ada L.")]
        assert upstreams.calls == 3  # the author only

        # The Post Service forgets the post at once; the page drops it with post.deleted.
        await timelines.post_deleted(post_id=newer, author_id=int(author))
        assert await page() == [(str(older), "Ada L.")]
        assert await timelines.cache.get([newer], []) == ({}, {})


async def test_a_page_read_on_a_connection_postgresql_dropped_is_read_again(
    *,
    app: FastAPI,
    client: AsyncClient,
    engine: AsyncEngine,
    auth: Auth,
    new_id: Callable[[], int],
) -> None:
    """Page reads skip the pre-ping, so a dropped pooled connection is met by the statement."""
    reader = new_id()
    await _follow_with_posts(app, reader, new_id, 1)
    transport = httpx.ASGITransport(app=_Upstreams().app)  # knows no post: pages come empty
    async with (
        httpx.AsyncClient(transport=transport, base_url="http://posts") as post_client,
        httpx.AsyncClient(transport=transport, base_url="http://users") as user_client,
    ):
        app.state.hydrator = Hydrator(
            posts=post_client, users=user_client, cache=app.state.timelines.cache, timeout_seconds=1
        )
        assert (await client.get("/timelines/home", headers=auth(reader))).status_code == 200
        async with engine.connect() as connection:
            dropped = await connection.scalar(
                text(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE "
                    "datname = current_database() AND application_name = 'timeline-service'"
                )
            )
        assert dropped
        assert (await client.get("/timelines/home", headers=auth(reader))).status_code == 200
