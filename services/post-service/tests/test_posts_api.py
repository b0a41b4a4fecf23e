"""The Post Service contract through HTTP against real PostgreSQL and Redis: writing, reading,
batch reads, deleting, and every error path."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from httpx import AsyncClient

from terrascale.common.ids import decode_id
from terrascale.common.keys import generate_private_key_pem, load_private_key
from terrascale.common.testing.helpers import PROBLEM_JSON
from terrascale.posts import __version__

Headers = dict[str, str]


def assert_problem(response: Any, *, status: int, field: str | None = None) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM_JSON
    body = response.json()
    assert body["status"] == status
    assert body["instance"] == response.request.url.path
    if field is not None:
        assert field in [error["field"] for error in body["errors"]], body
    return body


async def create(client: AsyncClient, headers: Headers, text: str, **body: Any) -> dict[str, Any]:
    response = await client.post("/posts", json={"text": text, **body}, headers=headers)
    assert response.status_code == 201, response.text
    return response.json()


async def test_banner_health_ready_and_docs(client: AsyncClient) -> None:
    banner = (await client.get("/")).json()
    assert banner["service"] == "post-service"
    assert banner["version"] == __version__
    assert (await client.get("/health")).json() == {"status": "ok"}
    ready = await client.get("/ready")
    assert ready.json() == {"status": "ready", "checks": {"postgres": "ok", "redis": "ok"}}
    spec = (await client.get("/openapi.json")).json()
    create_op = spec["paths"]["/posts"]["post"]
    assert set(create_op["responses"]) == {"201", "400", "401", "409", "413", "422", "429", "503"}
    assert PROBLEM_JSON in create_op["responses"]["401"]["content"]
    post_schema = spec["components"]["schemas"]["PostRead"]["properties"]
    assert post_schema["id"]["type"] == "string"
    assert spec["paths"]["/posts/{post_id}"]["delete"]["responses"].keys() >= {"403", "404"}


async def test_create_post_returns_it_with_entities(
    client: AsyncClient,
    author: int,
    author_headers: Headers,
    remember_user: Callable[..., Awaitable[tuple[int, str]]],
) -> None:
    ada_id, ada = await remember_user()
    response = await client.post(
        "/posts",
        json={
            "text": f"Hi @{ada.upper()} and @nobody_here! #Engines #engines https://example.com."
        },
        headers=author_headers,
    )
    assert response.status_code == 201
    body = response.json()
    assert response.headers["location"] == f"/posts/{body['id']}"
    assert "idempotent-replayed" not in response.headers
    assert body == {
        "id": body["id"],
        "author_id": str(author),
        "text": f"Hi @{ada.upper()} and @nobody_here! #Engines #engines https://example.com.",
        "reply_to": None,
        "mentions": [{"user_id": str(ada_id), "username": ada}],
        "hashtags": ["engines"],
        "urls": ["https://example.com"],
        "created_at": body["created_at"],
    }
    assert isinstance(body["id"], str)
    created_at = datetime.fromisoformat(body["created_at"])
    assert abs(created_at - datetime.now(UTC)) < timedelta(seconds=30)


async def test_post_id_is_minted_on_the_authors_shard(
    client: AsyncClient, author: int, author_headers: Headers
) -> None:
    post = await create(client, author_headers, "shard check")
    parts = decode_id(int(post["id"]))
    assert parts.shard == decode_id(author).shard
    assert abs(parts.created_at - datetime.now(UTC)) < timedelta(seconds=30)


async def test_read_post(client: AsyncClient, author_headers: Headers) -> None:
    post = await create(client, author_headers, "read me")
    response = await client.get(f"/posts/{post['id']}")
    assert response.status_code == 200
    assert response.json() == post
    # Reading needs no token, and the second read (from the cache) is the same.
    assert (await client.get(f"/posts/{post['id']}")).json() == post


@pytest.mark.parametrize(
    ("path", "status"),
    [("/posts/1", 404), ("/posts/9223372036854775807", 404), ("/posts/0", 422), ("/posts/x", 422)],
)
async def test_read_unknown_or_malformed_post(client: AsyncClient, path: str, status: int) -> None:
    assert_problem(await client.get(path), status=status)


async def test_text_length_counts_code_points(client: AsyncClient, author_headers: Headers) -> None:
    emoji = "\U0001f600"  # 4 bytes in UTF-8, 2 UTF-16 units, 1 code point
    ok = await create(client, author_headers, emoji * 500)
    assert len(ok["text"]) == 500
    too_long = await client.post("/posts", json={"text": emoji * 501}, headers=author_headers)
    assert_problem(too_long, status=422, field="body.text")
    cjk = await create(client, author_headers, "字" * 500)
    assert len(cjk["text"]) == 500


async def test_text_is_normalised_to_nfc_before_counting(
    client: AsyncClient, author_headers: Headers
) -> None:
    decomposed = "e\u0301" * 500  # 1,000 code points typed, 500 characters once composed
    post = await create(client, author_headers, decomposed)
    assert post["text"] == "\u00e9" * 500


@pytest.mark.parametrize(
    "text",
    ["", " ", " \n\t ", "\u3000\u200b", "null\x00byte", "bell\x07", "\ud800lone surrogate"],
    ids=["empty", "space", "whitespace", "ideographic-space", "nul", "control", "surrogate"],
)
async def test_invalid_text_is_422(client: AsyncClient, author_headers: Headers, text: str) -> None:
    # Escaped JSON: a lone surrogate cannot be encoded as UTF-8, but "\\ud800" can be sent.
    response = await client.post(
        "/posts",
        content=json.dumps({"text": text}).encode(),
        headers={**author_headers, "Content-Type": "application/json"},
    )
    assert_problem(response, status=422, field="body.text")


async def test_tabs_and_line_breaks_are_allowed(
    client: AsyncClient, author_headers: Headers
) -> None:
    post = await create(client, author_headers, "line one\r\n\tline two")
    assert post["text"] == "line one\r\n\tline two"


@pytest.mark.parametrize(
    "body",
    [
        {"text": "hi", "id": "1"},
        {"text": "hi", "author_id": "1"},
        {"text": "hi", "mentions": []},
        {"text": 5},
        {"text": ["hi"]},
        {},
        {"text": "hi", "reply_to": "abc"},
        {"text": "hi", "reply_to": 0},
        {"text": "hi", "reply_to": "9223372036854775808"},
    ],
    ids=["id", "author", "counts", "number", "list", "missing", "reply-text", "zero", "too-big"],
)
async def test_malformed_bodies_are_422(
    client: AsyncClient, author_headers: Headers, body: dict[str, Any]
) -> None:
    response = await client.post("/posts", json=body, headers=author_headers)
    assert_problem(response, status=422)


async def test_unparseable_body_is_a_problem(client: AsyncClient, author_headers: Headers) -> None:
    response = await client.post(
        "/posts",
        content=b"{not json",
        headers={**author_headers, "Content-Type": "application/json"},
    )
    assert_problem(response, status=422)


async def test_reply_to_an_existing_post(client: AsyncClient, author_headers: Headers) -> None:
    parent = await create(client, author_headers, "parent")
    reply = await create(client, author_headers, "reply", reply_to=parent["id"])
    assert reply["reply_to"] == parent["id"]
    # Ids are accepted as JSON integers too.
    numeric = await create(client, author_headers, "reply", reply_to=int(parent["id"]))
    assert numeric["reply_to"] == parent["id"]


async def test_reply_to_a_missing_or_deleted_post_is_422(
    client: AsyncClient, author_headers: Headers
) -> None:
    missing = await client.post(
        "/posts", json={"text": "reply", "reply_to": "1"}, headers=author_headers
    )
    body = assert_problem(missing, status=422, field="body.reply_to")
    assert "body.reply_to" in body["detail"]

    parent = await create(client, author_headers, "soon gone")
    assert (
        await client.delete(f"/posts/{parent['id']}", headers=author_headers)
    ).status_code == 204
    deleted = await client.post(
        "/posts", json={"text": "reply", "reply_to": parent["id"]}, headers=author_headers
    )
    assert_problem(deleted, status=422, field="body.reply_to")


async def test_writing_needs_a_valid_token(
    client: AsyncClient,
    author: int,
    issue_token: Callable[..., str],
) -> None:
    no_token = await client.post("/posts", json={"text": "hi"})
    assert_problem(no_token, status=401)
    assert no_token.headers["www-authenticate"] == "Bearer"

    expired = issue_token(author, issued_at=datetime.now(UTC) - timedelta(hours=2))
    response = await client.post(
        "/posts", json={"text": "hi"}, headers={"Authorization": f"Bearer {expired}"}
    )
    assert "expired" in assert_problem(response, status=401)["detail"]

    valid = issue_token(author)
    header, payload, signature = valid.split(".")
    forged_signature = ("A" if signature[0] != "A" else "B") + signature[1:]
    tampered_tokens = [
        f"{header}.{payload}.{forged_signature}",
        # A payload swapped for another user's, signature left alone.
        f"{header}.{issue_token(author + 1).split('.')[1]}.{signature}",
        "not-a-jwt",
    ]
    for token in tampered_tokens:
        response = await client.post(
            "/posts", json={"text": "hi"}, headers={"Authorization": f"Bearer {token}"}
        )
        assert_problem(response, status=401)
        assert response.headers["www-authenticate"] == 'Bearer error="invalid_token"'


async def test_tokens_of_another_key_audience_or_type_are_refused(
    client: AsyncClient, author: int, issue_token: Callable[..., str]
) -> None:
    import jwt

    other_key = load_private_key(generate_private_key_pem())
    now = datetime.now(UTC)
    claims = {
        "sub": str(author),
        "iss": "terrascale",
        "aud": "terrascale",
        "iat": now,
        "exp": now + timedelta(minutes=5),
    }
    foreign = jwt.encode(claims, other_key, algorithm="EdDSA", headers={"typ": "at+jwt"})
    for token in (
        foreign,
        issue_token(author, aud="elsewhere"),
        issue_token(author, headers={"typ": "JWT"}),
    ):
        response = await client.post(
            "/posts", json={"text": "hi"}, headers={"Authorization": f"Bearer {token}"}
        )
        assert_problem(response, status=401)


async def test_delete_own_post(client: AsyncClient, author_headers: Headers) -> None:
    post = await create(client, author_headers, "short-lived")
    response = await client.delete(f"/posts/{post['id']}", headers=author_headers)
    assert response.status_code == 204
    assert response.content == b""
    assert_problem(await client.get(f"/posts/{post['id']}"), status=404)
    again = await client.delete(f"/posts/{post['id']}", headers=author_headers)
    assert_problem(again, status=404)


async def test_delete_someone_elses_post_is_403(
    client: AsyncClient,
    author_headers: Headers,
    new_user_id: Callable[[], int],
    auth: Callable[[int], Headers],
) -> None:
    post = await create(client, author_headers, "mine")
    response = await client.delete(f"/posts/{post['id']}", headers=auth(new_user_id()))
    assert_problem(response, status=403)
    assert (await client.get(f"/posts/{post['id']}")).status_code == 200


async def test_delete_needs_a_token_and_an_existing_post(
    client: AsyncClient, author_headers: Headers
) -> None:
    post = await create(client, author_headers, "keep")
    assert_problem(await client.delete(f"/posts/{post['id']}"), status=401)
    assert_problem(await client.delete("/posts/1", headers=author_headers), status=404)
    assert_problem(await client.delete("/posts/abc", headers=author_headers), status=422)


async def test_batch_read_keeps_order_and_omits_missing_and_deleted(
    client: AsyncClient, author_headers: Headers
) -> None:
    first, second, third = [await create(client, author_headers, f"post {n}") for n in range(3)]
    await client.delete(f"/posts/{second['id']}", headers=author_headers)
    ids = [third["id"], "1", second["id"], first["id"], third["id"]]
    for _ in range(2):  # the second time from the cache
        response = await client.get("/posts", params={"ids": ",".join(ids)})
        assert response.status_code == 200
        assert response.json() == [third, first]
    repeated = await client.get("/posts", params=[("ids", first["id"]), ("ids", third["id"])])
    assert repeated.json() == [first, third]


async def test_batch_read_limits(client: AsyncClient, author_headers: Headers) -> None:
    post = await create(client, author_headers, "batch")
    hundred = ",".join([post["id"]] + [str(n) for n in range(1, 100)])
    assert (await client.get("/posts", params={"ids": hundred})).json() == [post]


@pytest.mark.parametrize(
    "ids",
    ["", ",", "1,", " 1", "abc", "1,x", "-1", "0", "01", "\u0661\u0662", "1" * 5000],
    ids=[
        "empty",
        "comma",
        "trailing",
        "space",
        "word",
        "mixed",
        "neg",
        "zero",
        "lead0",
        "arabic",
        "huge",
    ],
)
async def test_malformed_batch_is_422(client: AsyncClient, ids: str) -> None:
    body = assert_problem(await client.get("/posts", params={"ids": ids}), status=422)
    assert all(error["field"].startswith("query.ids") for error in body["errors"])


async def test_batch_counts_every_id_however_given(client: AsyncClient) -> None:
    comma = ",".join(str(n) for n in range(1, 102))
    assert_problem(await client.get("/posts", params={"ids": comma}), status=422)
    repeated: list[tuple[str, str | int | float | bool | None]] = [
        ("ids", str(n)) for n in range(1, 102)
    ]
    assert_problem(await client.get("/posts", params=repeated), status=422)
    fifty = ",".join(str(n) for n in range(1, 51))
    mixed: list[tuple[str, str | int | float | bool | None]] = [("ids", fifty), ("ids", fifty)]
    assert (await client.get("/posts", params=mixed)).status_code == 200


async def test_ids_beyond_the_id_range_are_unknown_ids(
    client: AsyncClient, author_headers: Headers
) -> None:
    post = await create(client, author_headers, "in range")
    response = await client.get("/posts", params={"ids": f"9999999999999999999,{post['id']}"})
    assert response.json() == [post]


async def test_batch_without_ids_is_422(client: AsyncClient) -> None:
    assert_problem(await client.get("/posts"), status=422)


async def test_unknown_route_and_method_are_problems(client: AsyncClient) -> None:
    assert_problem(await client.get("/nope"), status=404)
    wrong = await client.put("/posts/1", json={})
    assert_problem(wrong, status=405)
    health = await client.post("/health")
    assert health.status_code == 405
    assert health.headers["allow"] == "GET"


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("OPTIONS", "/posts", "GET, POST"),
        ("DELETE", "/posts", "GET, POST"),
        ("PUT", "/posts/1", "DELETE, GET"),
        ("POST", "/users/1/posts", "GET"),
    ],
)
async def test_405_lists_every_method_of_the_path(
    client: AsyncClient, method: str, path: str, allow: str
) -> None:
    response = await client.request(method, path)
    assert_problem(response, status=405)
    assert response.headers["allow"] == allow
