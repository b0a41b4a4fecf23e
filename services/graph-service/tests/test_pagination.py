"""Followers and following lists: newest first, keyset cursors, Link headers, no gaps or
duplicates while follows keep arriving, and a 400 for any cursor this service did not issue."""

from __future__ import annotations

import asyncio
import base64
import zlib
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from httpx import AsyncClient

from terrascale.common.testing.helpers import PROBLEM_JSON
from terrascale.graph.errors import InvalidCursorError
from terrascale.graph.pagination import Position, decode_cursor, encode_cursor

KnownUser = Callable[[], Awaitable[int]]
Auth = Callable[[int], dict[str, str]]
Sql = Callable[..., Awaitable[list[Any]]]


async def follow(client: AsyncClient, auth: Auth, follower: int, followee: int) -> None:
    response = await client.put(f"/users/{follower}/following/{followee}", headers=auth(follower))
    assert response.status_code == 200, response.text


async def read_all(client: AsyncClient, path: str, *, limit: int) -> tuple[list[str], int]:
    """Every user id of a list, page by page through the Link header; and the page count."""
    seen: list[str] = []
    url: str | None = f"{path}?limit={limit}"
    pages = 0
    while url is not None:
        response = await client.get(url)
        assert response.status_code == 200, response.text
        body = response.json()
        pages += 1
        assert len(body["items"]) <= limit
        seen.extend(item["user_id"] for item in body["items"])
        next_link = response.links.get("next")
        assert (next_link is None) == (body["next_cursor"] is None)
        url = None if next_link is None else next_link["url"]
    return seen, pages


async def test_followers_and_following_newest_first(
    client: AsyncClient, known_user: KnownUser, auth: Auth
) -> None:
    star = await known_user()
    fans = [await known_user() for _ in range(5)]
    for fan in fans:
        await follow(client, auth, fan, star)
        await follow(client, auth, star, fan)

    for kind in ("followers", "following"):
        response = await client.get(f"/users/{star}/{kind}")
        body = response.json()
        assert [item["user_id"] for item in body["items"]] == [str(f) for f in reversed(fans)]
        times = [datetime.fromisoformat(item["followed_at"]) for item in body["items"]]
        assert times == sorted(times, reverse=True)
        assert body["next_cursor"] is None
        assert "link" not in response.headers


async def test_pages_link_to_the_next_and_cover_the_list_once(
    client: AsyncClient, known_user: KnownUser, auth: Auth
) -> None:
    star = await known_user()
    fans = [await known_user() for _ in range(11)]
    for fan in fans:
        await follow(client, auth, fan, star)

    first = await client.get(f"/users/{star}/followers", params={"limit": 4})
    cursor = first.json()["next_cursor"]
    assert first.headers["link"] == (
        f'<http://testserver/users/{star}/followers?limit=4&cursor={cursor}>; rel="next"'
    )
    seen, pages = await read_all(client, f"/users/{star}/followers", limit=4)
    assert seen == [str(f) for f in reversed(fans)]
    assert pages == 3
    # A list that fills its last page exactly has no next page after it.
    seen, pages = await read_all(client, f"/users/{star}/followers", limit=11)
    assert (len(seen), pages) == (11, 1)


async def test_no_gaps_or_duplicates_while_follows_arrive(
    client: AsyncClient, known_user: KnownUser, auth: Auth
) -> None:
    star = await known_user()
    before = [await known_user() for _ in range(30)]
    for fan in before:
        await follow(client, auth, fan, star)
    latecomers = [await known_user() for _ in range(30)]

    async def keep_following() -> None:
        for fan in latecomers:
            await follow(client, auth, fan, star)
            await asyncio.sleep(0)

    reading = asyncio.create_task(read_all(client, f"/users/{star}/followers", limit=3))
    await asyncio.gather(reading, keep_following())
    seen, _ = reading.result()

    assert len(seen) == len(set(seen)), "a follower was listed twice"
    # Everyone who followed before the first page is there, in order; latecomers may or may not
    # be (they sort before the cursor), but nothing else.
    old = [user for user in seen if int(user) in before]
    assert old == [str(f) for f in reversed(before)]
    assert set(seen) <= {str(f) for f in before + latecomers}


async def test_ties_on_time_are_broken_by_id(
    client: AsyncClient, new_id: Callable[[], int], sql: Sql
) -> None:
    """Follows stamped with the same microsecond still page without gaps or repeats."""
    owner = new_id()
    others = sorted(new_id() for _ in range(7))
    moment = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
    for other in others:
        await sql(
            "INSERT INTO follower_edge (followee_id, follower_id, created_at) VALUES (:o, :f, :t)",
            o=owner,
            f=other,
            t=moment,
        )
    seen, pages = await read_all(client, f"/users/{owner}/followers", limit=2)
    assert seen == [str(other) for other in reversed(others)]
    assert pages == 4


@pytest.mark.parametrize("limit", ["0", "201", "-1", "ten"])
async def test_limit_out_of_range_is_422(client: AsyncClient, limit: str) -> None:
    response = await client.get("/users/1/followers", params={"limit": limit})
    assert response.status_code == 422
    assert response.headers["content-type"] == PROBLEM_JSON


async def test_limit_bounds_are_accepted(client: AsyncClient) -> None:
    for limit in ("1", "200"):
        assert (await client.get("/users/1/following", params={"limit": limit})).status_code == 200


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _signed(text: str) -> str:
    """A cursor of ``text`` with a correct checksum, so only the layout or a value is wrong."""
    return _b64(f"{text}:{zlib.crc32(text.encode()):08x}".encode())


def _non_canonical() -> str:
    """A valid cursor re-spelt with different unused bits in its last character."""
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    for user_id in range(1, 100):
        cursor = encode_cursor(Position(datetime(2026, 1, 1, tzinfo=UTC), user_id))
        if len(cursor) % 4:  # the last character then carries unused bits
            return cursor[:-1] + alphabet[alphabet.index(cursor[-1]) ^ 1]
    raise AssertionError


@pytest.mark.parametrize(
    "cursor",
    [
        pytest.param("", id="empty"),
        pytest.param("!!!", id="not-base64-alphabet"),
        pytest.param("a", id="bad-base64-length"),
        pytest.param(_b64(b"hello"), id="not-a-position"),
        pytest.param(_b64(b"\xff\xfe"), id="not-ascii"),
        pytest.param(_b64(b"1:5"), id="no-checksum"),
        pytest.param(_b64(b"1:5:00000000"), id="wrong-checksum"),
        pytest.param(_signed("123"), id="no-separator"),
        pytest.param(_signed("-1:5"), id="negative-time"),
        pytest.param(_signed("1:0"), id="zero-id"),
        pytest.param(_signed("01:5"), id="leading-zero"),
        pytest.param(_signed("1:5 "), id="trailing-space"),
        pytest.param(_signed("1:9223372036854775808"), id="id-too-large"),
        pytest.param(_signed("999999999999999999:5"), id="time-past-year-9999"),
        pytest.param(_non_canonical(), id="non-canonical-spelling"),
        pytest.param("A" * 81, id="too-long"),
    ],
)
async def test_malformed_cursor_is_400(client: AsyncClient, cursor: str) -> None:
    for kind in ("followers", "following"):
        response = await client.get(f"/users/1/{kind}", params={"cursor": cursor})
        assert response.status_code == 400, (cursor, response.text)
        assert response.headers["content-type"] == PROBLEM_JSON
        assert response.json()["type"] == "urn:terrascale:problem:invalid-cursor"


async def test_tampered_cursor_from_a_real_page_is_400(
    client: AsyncClient, known_user: KnownUser, auth: Auth
) -> None:
    star = await known_user()
    for _ in range(3):
        await follow(client, auth, await known_user(), star)
    cursor = (await client.get(f"/users/{star}/followers", params={"limit": 1})).json()[
        "next_cursor"
    ]
    assert (await client.get(f"/users/{star}/followers", params={"cursor": cursor})).is_success
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    # Every single-character change anywhere in the cursor, and a few coarser ones.
    tampered = [
        cursor[:i] + alphabet[(alphabet.index(cursor[i]) + 1) % 64] + cursor[i + 1 :]
        for i in range(len(cursor))
    ]
    tampered += [cursor[1:], cursor[:-1], cursor + "A", cursor + "=", cursor.swapcase()]
    for bad in tampered:
        response = await client.get(f"/users/{star}/followers", params={"cursor": bad})
        assert response.status_code == 400, (bad, response.text)


def test_cursor_round_trip_is_exact_to_the_microsecond() -> None:
    position = Position(datetime(2026, 11, 26, 3, 4, 5, 678901, tzinfo=UTC), 2**62 + 12345)
    assert decode_cursor(encode_cursor(position)) == position
    with pytest.raises(InvalidCursorError):
        decode_cursor(encode_cursor(position) + "A")
