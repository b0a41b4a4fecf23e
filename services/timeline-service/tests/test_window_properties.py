"""Properties of the home timeline's paging: ``Window`` picks the right slice of any set of ids,
walking its cursors covers a timeline exactly once in either direction, and over HTTP (posts
arriving as ``post.created`` events through the worker's handler) walking the ``next`` links
while posts keep arriving never repeats a post and never skips one that was there first. Any
cursor or page size is a page or a 422 problem (the cursors are post ids), never a 500."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.responses import JSONResponse
from httpx import AsyncClient
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from terrascale.common.events import Envelope, FollowCreated, PostCreated
from terrascale.common.testing.helpers import PROBLEM_JSON
from terrascale.common.testing.strategies import is_canonical_id, junk_query_values
from terrascale.timelines.consumer import timeline_events_handler
from terrascale.timelines.deps import MAX_PAGE
from terrascale.timelines.hydration import Hydrator
from terrascale.timelines.window import Window

Auth = Callable[..., dict[str, str]]
# The app and its client are built once per test, not per example; each example reads as a new
# user following a new author, so examples never see one another's posts.
HTTP_SETTINGS = settings(
    max_examples=40,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

post_ids = st.sets(st.integers(min_value=1, max_value=10_000), max_size=60)
limits = st.integers(min_value=1, max_value=MAX_PAGE)
bounds = st.none() | st.integers(min_value=0, max_value=10_001)


@given(post_ids, limits, bounds, bounds, st.booleans())
def test_a_window_is_the_right_end_of_what_lies_inside_it(
    ids: set[int], limit: int, older_than: int | None, newer_than: int | None, from_oldest: bool
) -> None:
    window = Window(limit, older_than, newer_than, from_oldest)
    page = window.select([*ids, *ids])  # duplicates in, none out
    inside = sorted((i for i in ids if window.contains(i)), reverse=True)
    assert page == (inside[-limit:] if from_oldest else inside[:limit])
    assert len(page) <= limit


@given(post_ids, limits)
def test_max_id_pages_cover_the_timeline_once_newest_first(ids: set[int], limit: int) -> None:
    seen: list[int] = []
    window = Window.from_query(limit=limit, max_id=None, since_id=None, min_id=None)
    while page := window.select(ids):
        seen.extend(page)
        window = Window.from_query(limit=limit, max_id=page[-1], since_id=None, min_id=None)
    assert seen == sorted(ids, reverse=True)


@given(post_ids, limits)
def test_min_id_pages_cover_the_timeline_once_oldest_first(ids: set[int], limit: int) -> None:
    seen: list[int] = []
    window = Window.from_query(limit=limit, max_id=None, since_id=None, min_id=0)
    while page := window.select(ids):
        seen.extend(reversed(page))
        window = Window.from_query(limit=limit, max_id=None, since_id=None, min_id=page[0])
    assert seen == sorted(ids)


# --- over HTTP ------------------------------------------------------------------------------


def _echo_upstream() -> FastAPI:
    """Post and User Services that know every id asked for."""
    upstream = FastAPI()

    @upstream.get("/posts")
    async def posts(ids: str) -> JSONResponse:
        return JSONResponse(
            [
                {
                    "id": post_id,
                    "author_id": "1",
                    "text": "post",
                    "reply_to": None,
                    "mentions": [],
                    "hashtags": [],
                    "urls": [],
                    "created_at": "2026-11-26T00:00:00Z",
                }
                for post_id in ids.split(",")
            ]
        )

    @upstream.get("/users")
    async def users(ids: str) -> JSONResponse:
        return JSONResponse([{"id": user, "username": f"u{user}"} for user in ids.split(",")])

    return upstream


@pytest.fixture
async def hydrated_app(app: FastAPI) -> AsyncIterator[FastAPI]:
    transport = httpx.ASGITransport(app=_echo_upstream())
    async with (
        httpx.AsyncClient(transport=transport, base_url="http://posts") as posts,
        httpx.AsyncClient(transport=transport, base_url="http://users") as users,
    ):
        app.state.hydrator = Hydrator(
            posts=posts, users=users, cache=app.state.timelines.cache, timeout_seconds=5
        )
        yield app


@settings(
    max_examples=20,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    existing=st.integers(min_value=0, max_value=12),
    limit=st.integers(min_value=1, max_value=5),
    arrivals=st.lists(st.integers(min_value=0, max_value=4), max_size=10),
)
async def test_walking_the_home_timeline_while_posts_arrive_sees_each_old_post_once(
    *,
    hydrated_app: FastAPI,
    client: AsyncClient,
    auth: Auth,
    new_id: Callable[[], int],
    existing: int,
    limit: int,
    arrivals: list[int],
) -> None:
    handle = timeline_events_handler(hydrated_app.state.timelines)
    reader, author = new_id(), new_id()
    await handle(Envelope.wrap(FollowCreated(follower_id=reader, followee_id=author), source="t"))

    async def publish() -> str:
        post_id = new_id()
        await handle(
            Envelope.wrap(PostCreated(post_id=post_id, author_id=author, text="x"), source="t")
        )
        return str(post_id)

    before = [await publish() for _ in range(existing)][::-1]
    seen: list[str] = []
    url: str | None = f"/timelines/home?limit={limit}"
    page_number = 0
    while url is not None:
        reading = asyncio.create_task(client.get(url, headers=auth(reader)))
        writes = arrivals[page_number] if page_number < len(arrivals) else 0
        await asyncio.gather(*(publish() for _ in range(writes)))
        response = await reading
        assert response.status_code == 200, response.text
        page = [post["id"] for post in response.json()]
        assert len(page) <= limit
        seen.extend(page)
        next_link = response.links.get("next")
        url = None if next_link is None else next_link["url"]
        page_number += 1
    assert len(seen) == len(set(seen))
    assert seen == sorted(seen, key=int, reverse=True)
    assert [post_id for post_id in seen if post_id in set(before)] == before


@HTTP_SETTINGS
@given(name=st.sampled_from(["max_id", "since_id", "min_id", "limit"]), value=junk_query_values)
@example(name="max_id", value="9" * 5000)  # past int()'s 4,300-digit limit
@example(name="limit", value=str(MAX_PAGE + 1))
async def test_any_cursor_or_page_size_is_a_page_or_a_422_problem(
    client: AsyncClient, auth: Auth, new_id: Callable[[], int], name: str, value: str
) -> None:
    response = await client.get("/timelines/home", params={name: value}, headers=auth(new_id()))
    assert response.status_code in (200, 422), response.text
    if is_canonical_id(value) and (name != "limit" or int(value) <= MAX_PAGE):
        assert response.status_code == 200
    if response.status_code == 422:
        assert response.headers["content-type"] == PROBLEM_JSON
        problem: dict[str, Any] = response.json()
        assert {error["field"] for error in problem["errors"]} == {f"query.{name}"}
