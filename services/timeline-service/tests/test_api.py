"""GET /timelines/home through HTTP: authentication, validation, paging links, hydration and
the answer when the Post Service is down."""

from __future__ import annotations

from collections.abc import Callable

import httpx
from fastapi import FastAPI
from httpx import AsyncClient

from terrascale.common.testing.helpers import PROBLEM_JSON
from terrascale.timelines.hydration import Hydrator
from terrascale.timelines.service import Timelines

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
        app.state.hydrator = Hydrator(posts=post_client, users=user_client, timeout_seconds=1)
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
