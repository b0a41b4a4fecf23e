"""The HTTP API: listing with cursors, kinds and Link headers, unread counts, marking read, and
every error as an RFC 9457 problem."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from httpx import AsyncClient

from terrascale.common.testing.helpers import PROBLEM_JSON, serve_app
from terrascale.notifications.app import create_app
from terrascale.notifications.rules import Kind

from .conftest import Auth, MakeSettings, Store

LINK = re.compile(r'<([^>]+)>; rel="(\w+)"')


def links(header: str | None) -> dict[str, str]:
    return {rel: url for url, rel in LINK.findall(header or "")}


async def test_lists_newest_first_with_ids_as_strings(
    client: AsyncClient, store: Store, new_id: Callable[[], int], auth: Auth
) -> None:
    me, follower, author, post_id = new_id(), new_id(), new_id(), new_id()
    when = datetime(2026, 11, 30, 8, 0, tzinfo=UTC)
    await store(me, kind=Kind.FOLLOW, actor_id=follower, created_at=when)
    await store(me, kind=Kind.MENTION, actor_id=author, subject_id=post_id, created_at=when)
    response = await client.get("/notifications", headers=auth(me))
    assert response.status_code == 200, response.text
    assert response.json() == [
        {
            "id": "2",
            "kind": "mention",
            "actor_id": str(author),
            "post_id": str(post_id),
            "created_at": "2026-11-30T08:00:00Z",
            "read": False,
        },
        {
            "id": "1",
            "kind": "follow",
            "actor_id": str(follower),
            "post_id": None,
            "created_at": "2026-11-30T08:00:00Z",
            "read": False,
        },
    ]


async def test_a_user_sees_only_their_own(
    client: AsyncClient, store: Store, new_id: Callable[[], int], auth: Auth
) -> None:
    me, other = new_id(), new_id()
    await store(other)
    assert (await client.get("/notifications", headers=auth(me))).json() == []
    assert (await client.get("/notifications/unread_count", headers=auth(me))).json() == {
        "count": 0
    }


async def test_pages_follow_link_headers_both_ways(
    client: AsyncClient, store: Store, new_id: Callable[[], int], auth: Auth
) -> None:
    me = new_id()
    for _ in range(5):
        await store(me)
    first = await client.get("/notifications", params={"limit": 2}, headers=auth(me))
    assert [item["id"] for item in first.json()] == ["5", "4"]
    first_links = links(first.headers.get("link"))
    assert "max_id=4" in first_links["next"]
    assert "min_id=5" in first_links["prev"]

    second = await client.get(first_links["next"], headers=auth(me))
    assert [item["id"] for item in second.json()] == ["3", "2"]
    last = await client.get(links(second.headers["link"])["next"], headers=auth(me))
    assert [item["id"] for item in last.json()] == ["1"]
    assert set(links(last.headers["link"])) == {"prev"}  # a short page is the end

    # Newer ones arrive; prev of the first page pages forward through them without a gap.
    for _ in range(3):
        await store(me)
    newer = await client.get(first_links["prev"], headers=auth(me))
    assert [item["id"] for item in newer.json()] == ["7", "6"]
    newest = await client.get(links(newer.headers["link"])["prev"], headers=auth(me))
    assert [item["id"] for item in newest.json()] == ["8"]
    empty = await client.get(links(newest.headers["link"])["prev"], headers=auth(me))
    assert empty.json() == []
    assert "link" not in empty.headers


async def test_since_id_gives_the_newest_above_it(
    client: AsyncClient, store: Store, new_id: Callable[[], int], auth: Auth
) -> None:
    me = new_id()
    for _ in range(6):
        await store(me)
    page = await client.get("/notifications", params={"since_id": 2, "limit": 2}, headers=auth(me))
    assert [item["id"] for item in page.json()] == ["6", "5"]
    window = await client.get(
        "/notifications", params={"since_id": 2, "max_id": 5}, headers=auth(me)
    )
    assert [item["id"] for item in window.json()] == ["4", "3"]


async def test_kinds_filter_comma_separated_or_repeated(
    client: AsyncClient, store: Store, new_id: Callable[[], int], auth: Auth
) -> None:
    me = new_id()
    await store(me, kind=Kind.FOLLOW)
    await store(me, kind=Kind.MENTION)
    await store(me, kind=Kind.REPLY)

    async def kinds(query: str) -> list[str]:
        response = await client.get(f"/notifications?{query}", headers=auth(me))
        assert response.status_code == 200, response.text
        return [item["kind"] for item in response.json()]

    assert await kinds("kinds=follow") == ["follow"]
    assert await kinds("kinds=mention,reply") == ["reply", "mention"]
    assert await kinds("kinds=follow&kinds=reply") == ["reply", "follow"]
    assert await kinds("kinds=reply,reply") == ["reply"]


async def test_link_headers_keep_the_kinds(
    client: AsyncClient, store: Store, new_id: Callable[[], int], auth: Auth
) -> None:
    me = new_id()
    for kind in (Kind.FOLLOW, Kind.MENTION, Kind.FOLLOW, Kind.MENTION):
        await store(me, kind=kind)
    page = await client.get(
        "/notifications", params={"kinds": "follow", "limit": 1}, headers=auth(me)
    )
    assert [item["id"] for item in page.json()] == ["3"]
    following = await client.get(links(page.headers["link"])["next"], headers=auth(me))
    assert [(item["id"], item["kind"]) for item in following.json()] == [("1", "follow")]


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("kinds=like", "query.kinds"),
        ("kinds=follow,", "query.kinds"),
        ("kinds=", "query.kinds"),
        ("kinds=FOLLOW", "query.kinds"),
        ("limit=0", "query.limit"),
        ("limit=41", "query.limit"),
        ("limit=ten", "query.limit"),
        ("max_id=abc", "query.max_id"),
        ("max_id=-1", "query.max_id"),
        ("since_id=1.5", "query.since_id"),
        ("min_id=99999999999999999999", "query.min_id"),
    ],
)
async def test_bad_queries_are_422_naming_the_field(
    client: AsyncClient, auth: Auth, new_id: Callable[[], int], query: str, field: str
) -> None:
    response = await client.get(f"/notifications?{query}", headers=auth(new_id()))
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == PROBLEM_JSON
    problem = response.json()
    assert problem["type"] == "urn:terrascale:problem:validation-error"
    assert all(error["field"].startswith(field) for error in problem["errors"])
    assert field in problem["detail"]


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/notifications"),
        ("GET", "/notifications/unread_count"),
        ("POST", "/notifications/read"),
        ("GET", "/notifications/stream"),
    ],
)
async def test_every_endpoint_needs_a_valid_token(
    client: AsyncClient, new_id: Callable[[], int], method: str, path: str
) -> None:
    missing = await client.request(method, path)
    assert missing.status_code == 401
    assert missing.headers["content-type"] == PROBLEM_JSON
    assert missing.headers["www-authenticate"] == "Bearer"
    from .conftest import issue_token

    expired = issue_token(new_id(), ttl=timedelta(minutes=-5))
    bad = await client.request(method, path, headers={"Authorization": f"Bearer {expired}"})
    assert bad.status_code == 401
    assert bad.json()["detail"] == "The access token has expired."


async def test_mark_read_moves_forward_only_and_clamps(
    client: AsyncClient, store: Store, new_id: Callable[[], int], auth: Auth
) -> None:
    me = new_id()
    for _ in range(5):
        await store(me)

    async def read(body: object) -> int:
        response = await client.post("/notifications/read", json=body, headers=auth(me))
        assert response.status_code == 200, response.text
        return response.json()["count"]

    assert (await client.get("/notifications/unread_count", headers=auth(me))).json() == {
        "count": 5
    }
    assert await read({"up_to_id": "2"}) == 3
    assert await read({"up_to_id": 1}) == 3  # never backwards
    listed = (await client.get("/notifications", headers=auth(me))).json()
    assert [item["read"] for item in listed] == [False, False, False, True, True]
    assert await read({"up_to_id": "999999"}) == 0  # beyond the newest: the newest
    await store(me)
    assert await read({"up_to_id": "5"}) == 1  # the clamp did not reach past the newest then
    assert (await client.get("/notifications/unread_count", headers=auth(me))).json() == {
        "count": 1
    }


@pytest.mark.parametrize("body", [None, {}])
async def test_mark_read_without_an_id_reads_all(
    client: AsyncClient,
    store: Store,
    new_id: Callable[[], int],
    auth: Auth,
    body: dict[str, object] | None,
) -> None:
    me = new_id()
    for _ in range(3):
        await store(me)
    response = await client.post("/notifications/read", json=body, headers=auth(me))
    assert response.json() == {"count": 0}
    listed = (await client.get("/notifications", headers=auth(me))).json()
    assert all(item["read"] for item in listed)


async def test_mark_read_with_nothing_stored_is_zero(
    client: AsyncClient, new_id: Callable[[], int], auth: Auth
) -> None:
    response = await client.post(
        "/notifications/read", json={"up_to_id": "3"}, headers=auth(new_id())
    )
    assert response.status_code == 200
    assert response.json() == {"count": 0}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"up_to_id": "abc"}, "body.up_to_id"),
        ({"up_to_id": 0}, "body.up_to_id"),
        ({"up_to_id": -4}, "body.up_to_id"),
        ({"up_to_id": "9223372036854775808"}, "body.up_to_id"),
        ({"up_to_id": 1.5}, "body.up_to_id"),
        ({"up_to": 3}, "body.up_to"),
        ([1, 2], "body"),
    ],
)
async def test_bad_read_bodies_are_422(
    client: AsyncClient, new_id: Callable[[], int], auth: Auth, body: object, field: str
) -> None:
    response = await client.post("/notifications/read", json=body, headers=auth(new_id()))
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == PROBLEM_JSON
    assert field in response.json()["detail"]


async def test_unparseable_read_body_is_a_problem(
    client: AsyncClient, new_id: Callable[[], int], auth: Auth
) -> None:
    response = await client.post(
        "/notifications/read",
        content=b"{not json",
        headers={**auth(new_id()), "Content-Type": "application/json"},
    )
    assert response.status_code == 422
    assert response.headers["content-type"] == PROBLEM_JSON


async def test_openapi_documents_every_operation(client: AsyncClient) -> None:
    document = (await client.get("/openapi.json")).json()
    operations = {
        operation["operationId"]
        for path in document["paths"].values()
        for operation in path.values()
    }
    assert {
        "list_notifications",
        "read_unread_count",
        "mark_read",
        "stream_notifications",
    } <= operations
    stream = document["paths"]["/notifications/stream"]["get"]
    assert "text/event-stream" in stream["responses"]["200"]["content"]


async def test_without_a_public_key_tokens_cannot_be_checked(
    make_settings: MakeSettings, new_id: Callable[[], int], auth: Auth
) -> None:
    """A deployment mistake, not bad input: the service starts (and says so in its log) and
    answers 500 until JWT_PUBLIC_KEY is set."""
    app = create_app(make_settings(jwt_public_key=None))
    async with serve_app(app) as client:
        response = await client.get("/notifications", headers=auth(new_id()))
    assert response.status_code == 500
    assert "JWT_PUBLIC_KEY" in response.json()["detail"]
