"""``GET /users/{id}/posts``: newest first, Mastodon-style cursors and ``Link`` headers."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from httpx import AsyncClient, Response
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

Headers = dict[str, str]


async def write(client: AsyncClient, headers: Headers, count: int, label: str) -> list[str]:
    """Writes ``count`` posts; returns their ids, newest first."""
    ids: list[str] = []
    for n in range(count):
        response = await client.post("/posts", json={"text": f"{label} {n}"}, headers=headers)
        assert response.status_code == 201
        ids.append(response.json()["id"])
    return ids[::-1]


def ids_of(response: Response) -> list[str]:
    assert response.status_code == 200, response.text
    return [post["id"] for post in response.json()]


async def test_newest_first_with_default_and_custom_limits(
    client: AsyncClient, author: int, author_headers: Headers
) -> None:
    written = await write(client, author_headers, 25, "post")
    default = await client.get(f"/users/{author}/posts")
    assert ids_of(default) == written[:20]
    assert ids_of(await client.get(f"/users/{author}/posts", params={"limit": 3})) == written[:3]
    full = await client.get(f"/users/{author}/posts", params={"limit": 40})
    assert ids_of(full) == written
    first = default.json()[0]
    assert first["author_id"] == str(author)
    assert first["text"] == "post 24"


async def test_cursors_select_older_and_newer_posts(
    client: AsyncClient, author: int, author_headers: Headers
) -> None:
    written = await write(client, author_headers, 10, "post")  # newest first
    path = f"/users/{author}/posts"
    older = await client.get(path, params={"max_id": written[3], "limit": 4})
    assert ids_of(older) == written[4:8]
    newest_above = await client.get(path, params={"since_id": written[6], "limit": 2})
    assert ids_of(newest_above) == written[0:2]  # the newest ones, as in Mastodon
    just_above = await client.get(path, params={"min_id": written[6], "limit": 2})
    assert ids_of(just_above) == written[4:6]  # the ones right after the cursor
    between = await client.get(path, params={"max_id": written[2], "since_id": written[6]})
    assert ids_of(between) == written[3:6]
    assert ids_of(await client.get(path, params={"max_id": written[-1]})) == []


async def test_link_header_pages_through_without_gaps_while_posts_arrive(
    client: AsyncClient, author: int, author_headers: Headers
) -> None:
    original = await write(client, author_headers, 25, "old")
    seen: list[str] = []
    response = await client.get(f"/users/{author}/posts", params={"limit": 10})
    first_page = response
    while True:
        seen.extend(ids_of(response))
        await write(client, author_headers, 3, "new")  # arrive between page loads
        next_link = response.links.get("next")
        if next_link is None:
            break
        assert "max_id=" in next_link["url"]
        response = await client.get(next_link["url"])
    assert seen == original  # every old post once, in order, none of the new ones

    # The first page's "prev" link finds what arrived since, newest first.
    prev = first_page.links["prev"]["url"]
    assert f"since_id={original[0]}" in prev
    newer = ids_of(await client.get(prev))
    assert len(newer) == 9
    assert all(int(post_id) > int(original[0]) for post_id in newer)
    assert newer == sorted(newer, key=int, reverse=True)


async def test_min_id_pages_forward_without_gaps(
    client: AsyncClient, author: int, author_headers: Headers
) -> None:
    written = await write(client, author_headers, 7, "post")
    cursor = written[-1]
    forward: list[str] = []
    while page := ids_of(
        await client.get(f"/users/{author}/posts", params={"min_id": cursor, "limit": 2})
    ):
        forward.extend(reversed(page))
        cursor = page[0]
    assert forward == written[-2::-1]


async def test_link_header_rules(client: AsyncClient, author: int, author_headers: Headers) -> None:
    written = await write(client, author_headers, 3, "post")
    path = f"/users/{author}/posts"
    full = await client.get(path, params={"limit": 3})
    assert set(full.links) == {"next", "prev"}
    assert full.links["next"]["url"] == (f"http://testserver{path}?limit=3&max_id={written[-1]}")
    assert full.links["prev"]["url"] == f"http://testserver{path}?limit=3&since_id={written[0]}"
    short = await client.get(path, params={"limit": 5})
    assert set(short.links) == {"prev"}  # a short page is the last one
    empty = await client.get(path, params={"max_id": written[-1]})
    assert "link" not in empty.headers


async def test_deleted_posts_leave_the_timeline(
    client: AsyncClient, author: int, author_headers: Headers
) -> None:
    written = await write(client, author_headers, 3, "post")
    await client.delete(f"/posts/{written[1]}", headers=author_headers)
    assert ids_of(await client.get(f"/users/{author}/posts")) == [written[0], written[2]]


async def test_other_authors_and_unknown_users(
    client: AsyncClient,
    author: int,
    author_headers: Headers,
    new_user_id: Callable[[], int],
    auth: Callable[[int], Headers],
) -> None:
    await write(client, author_headers, 2, "mine")
    other = new_user_id()
    theirs = await write(client, auth(other), 1, "theirs")
    assert ids_of(await client.get(f"/users/{other}/posts")) == theirs
    assert ids_of(await client.get(f"/users/{new_user_id()}/posts")) == []


@pytest.mark.parametrize(
    "params",
    [
        {"limit": 0},
        {"limit": 41},
        {"limit": "x"},
        {"max_id": 0},
        {"max_id": "abc"},
        {"since_id": "-5"},
        {"min_id": "9223372036854775808"},
    ],
)
async def test_malformed_parameters_are_422(
    client: AsyncClient, author: int, params: dict[str, Any]
) -> None:
    response = await client.get(f"/users/{author}/posts", params=params)
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"


@pytest.mark.parametrize("user_id", ["0", "x", "9223372036854775808"])
async def test_malformed_user_id_is_422(client: AsyncClient, user_id: str) -> None:
    assert (await client.get(f"/users/{user_id}/posts")).status_code == 422


async def test_the_timeline_query_is_an_index_range_scan(engine: AsyncEngine) -> None:
    """The planner may prefer a sequential scan of a small table; with that option taken away it
    must still find the partial index usable, without a sort."""
    async with engine.connect() as connection:
        await connection.execute(text("SET enable_seqscan = off"))
        await connection.execute(text("SET enable_bitmapscan = off"))
        plan = "\n".join(
            row[0]
            for row in await connection.execute(
                text(
                    "EXPLAIN SELECT * FROM post WHERE author_id = 42 AND deleted_at IS NULL "
                    "AND id < 9000000000000 ORDER BY id DESC LIMIT 20"
                )
            )
        )
    assert "Index Scan using ix_post_author_id_id" in plan
    assert "Sort" not in plan
