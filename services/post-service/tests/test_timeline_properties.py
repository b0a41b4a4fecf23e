"""Properties of ``GET /users/{id}/posts``: whatever a cursor or a page size says, the answer is
a page or a 422 problem (never a 500; the cursors are post ids, so a bad one is a validation
error, as documented), and walking the ``next`` links while new posts keep arriving returns every
post that existed before the walk exactly once."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from httpx import AsyncClient
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from terrascale.common.ids import MAX_ID
from terrascale.common.testing.helpers import PROBLEM_JSON
from terrascale.common.testing.strategies import is_canonical_id, junk_query_values
from terrascale.posts.router import MAX_PAGE

Headers = dict[str, str]

# The app and its client are built once per test, not per example; each example writes as a new
# author, so examples never see one another's posts.
HTTP_SETTINGS = settings(
    max_examples=50,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@HTTP_SETTINGS
@given(name=st.sampled_from(["max_id", "since_id", "min_id"]), value=junk_query_values)
@example(name="max_id", value="9" * 5000)  # past int()'s 4,300-digit limit
@example(name="min_id", value="\u0661\u0662")  # ARABIC-INDIC digits
@example(name="since_id", value=str(MAX_ID))
async def test_any_cursor_is_a_page_or_a_422_problem(
    client: AsyncClient, author: int, name: str, value: str
) -> None:
    response = await client.get(f"/users/{author}/posts", params={name: value})
    assert response.status_code in (200, 422), response.text
    if is_canonical_id(value):
        assert response.status_code == 200
    if response.status_code == 422:
        assert response.headers["content-type"] == PROBLEM_JSON
        assert {error["field"] for error in response.json()["errors"]} == {f"query.{name}"}


@HTTP_SETTINGS
@given(limit=st.integers(min_value=-(2**70), max_value=2**70))
@example(limit=MAX_PAGE)
@example(limit=MAX_PAGE + 1)
async def test_page_size_is_1_to_40_or_a_422(client: AsyncClient, author: int, limit: int) -> None:
    response = await client.get(f"/users/{author}/posts", params={"limit": limit})
    if 1 <= limit <= MAX_PAGE:
        assert response.status_code == 200
    else:
        assert response.status_code == 422
        assert response.headers["content-type"] == PROBLEM_JSON
        assert [error["field"] for error in response.json()["errors"]] == ["query.limit"]


async def _write(client: AsyncClient, headers: Headers, label: str) -> str:
    response = await client.post("/posts", json={"text": label}, headers=headers)
    assert response.status_code == 201, response.text
    return response.json()["id"]


@settings(
    max_examples=20,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    existing=st.integers(min_value=0, max_value=12),
    limit=st.integers(min_value=1, max_value=5),
    arrivals=st.lists(st.integers(min_value=0, max_value=4), max_size=10),
)
async def test_walking_the_pages_while_posts_arrive_sees_each_old_post_once(
    *,
    client: AsyncClient,
    new_user_id: Callable[[], int],
    auth: Callable[[int], Headers],
    existing: int,
    limit: int,
    arrivals: list[int],
) -> None:
    author = new_user_id()
    headers = auth(author)
    before = [await _write(client, headers, f"old {n}") for n in range(existing)][::-1]
    seen: list[str] = []
    url: str | None = f"/users/{author}/posts?limit={limit}"
    page_number = 0
    while url is not None:
        writes = arrivals[page_number] if page_number < len(arrivals) else 0
        # New posts are written while the page is being read, not only between pages.
        reading = asyncio.create_task(client.get(url))
        await asyncio.gather(*(_write(client, headers, "new") for _ in range(writes)))
        response = await reading
        assert response.status_code == 200, response.text
        page = [post["id"] for post in response.json()]
        assert len(page) <= limit
        assert page == sorted(page, key=int, reverse=True)
        seen.extend(page)
        next_link = response.links.get("next")
        url = None if next_link is None else next_link["url"]
        page_number += 1
    assert len(seen) == len(set(seen))
    assert set(before) <= set(seen)
    # Newest first all the way: what arrived after the first page never shows up behind it.
    assert seen == sorted(seen, key=int, reverse=True)
    assert [post_id for post_id in seen if post_id in set(before)] == before
