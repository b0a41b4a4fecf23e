"""Security promises of the whole system, through HTTP against all five services (real
PostgreSQL, Redis and events): object-level authorisation, token checks in every service, mass
assignment, and per-user write limits. docs/security.md refers to these tests by name."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import uuid
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from e2e_system import System
from terrascale.common.keys import load_private_key, public_key_pem
from terrascale.common.testing.helpers import PROBLEM_JSON

WRITES_PER_MINUTE = 4


@pytest.fixture
def system_overrides() -> dict[str, dict[str, object]]:
    # The suite's system runs without limits; these tests need a small one to reach.
    limits = {"rate_limit_writes_per_minute": WRITES_PER_MINUTE}
    return dict.fromkeys(("users", "graph", "posts", "timelines", "notifications"), limits)


async def _sign_up(system: System) -> tuple[str, dict[str, str]]:
    """A new user, signed in for real: (id, Authorization header)."""
    credentials = {"username": f"u_{uuid.uuid4().hex[:12]}", "password": uuid.uuid4().hex}
    created = await system.users.post("/users/", json=credentials)
    assert created.status_code == 201, created.text
    token = (await system.users.post("/auth/token", data=credentials)).json()["access_token"]
    return created.json()["id"], {"Authorization": f"Bearer {token}"}


def _assert_problem(response: httpx.Response, status: int, slug: str | None = None) -> Any:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM_JSON
    body = response.json()
    if slug is not None:
        assert body["type"] == f"urn:terrascale:problem:{slug}"
    return body


async def _eventually(check: Any, seconds: float = 15) -> Any:
    deadline = asyncio.get_running_loop().time() + seconds
    while True:
        result = await check()
        if result or asyncio.get_running_loop().time() > deadline:
            return result
        await asyncio.sleep(0.1)


# --- API1: broken object-level authorisation --------------------------------------------


async def test_no_user_can_act_on_or_read_another_users_objects(system: System) -> None:
    alice, alice_auth = await _sign_up(system)
    bob, bob_auth = await _sign_up(system)
    carol, carol_auth = await _sign_up(system)
    await system.wait_until_posts_know(alice)
    # Bob follows Carol; Carol posts mentioning Alice: a post on Bob's home timeline and a
    # mention notification for Alice.
    follow = await system.graph.put(f"/users/{bob}/following/{carol}", headers=bob_auth)
    assert follow.status_code == 200, follow.text
    mine = await system.posts.post(
        "/posts", json={"text": f"hi @{await _username(system, alice)}"}, headers=carol_auth
    )
    assert mine.status_code == 201
    post_id = mine.json()["id"]
    await system.quiesce()

    # Reads identify the user by the token alone: a user id in the query changes nothing.
    alice_home = await system.timelines.get(f"/timelines/home?user_id={bob}", headers=alice_auth)
    assert alice_home.status_code == 200
    assert alice_home.json() == []
    bob_home = await system.timelines.get("/timelines/home", headers=bob_auth)
    assert [post["id"] for post in bob_home.json()] == [post_id]
    alice_notes = (await system.notifications.get("/notifications", headers=alice_auth)).json()
    assert [note["post_id"] for note in alice_notes] == [post_id]
    bob_view = await system.notifications.get(
        f"/notifications?recipient_id={alice}", headers=bob_auth
    )
    assert bob_view.json() == []

    # Bob cannot mark Alice's notification read: only his own read mark moves.
    marked = await system.notifications.post(
        "/notifications/read", json={"up_to_id": alice_notes[0]["id"]}, headers=bob_auth
    )
    assert marked.status_code == 200
    unread = await system.notifications.get("/notifications/unread_count", headers=alice_auth)
    assert unread.json()["count"] == 1

    # Nor follow, unfollow or import follows on someone else's behalf, nor delete Carol's post.
    for method, path, body, auth in (
        ("PUT", f"/users/{alice}/following/{carol}", None, bob_auth),
        ("POST", f"/users/{alice}/following", {"user_ids": [carol]}, bob_auth),
        ("DELETE", f"/users/{bob}/following/{carol}", None, alice_auth),
    ):
        refused = await system.graph.request(method, path, json=body, headers=auth)
        _assert_problem(refused, 403, "forbidden")
    relationship = await system.graph.get(f"/users/{alice}/relationship/{carol}")
    assert relationship.json()["following"] is False
    assert (await system.graph.get(f"/users/{bob}/relationship/{carol}")).json()["following"]
    _assert_problem(
        await system.posts.delete(f"/posts/{post_id}", headers=bob_auth), 403, "forbidden"
    )
    assert (await system.posts.get(f"/posts/{post_id}")).status_code == 200


async def _username(system: System, user_id: str) -> str:
    return (await system.users.get(f"/users/{user_id}")).json()["username"]


# --- API2: broken authentication, in every service ----------------------------------------


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _forge(header: dict[str, Any], claims: dict[str, Any], sign: Any) -> str:
    signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"
    return f"{signing_input}.{_b64(sign(signing_input.encode()))}"


def _bad_tokens(system: System, user_id: str) -> dict[str, str]:
    """Tokens every service must refuse, each failing one check."""
    private_key = load_private_key(system.private_key_pem)
    public_pem = public_key_pem(private_key).encode()
    now = int(datetime.now(UTC).timestamp())
    good = {"sub": user_id, "iss": "terrascale", "aud": "terrascale", "iat": now}
    good["exp"] = now + 600
    eddsa = {"alg": "EdDSA", "typ": "at+jwt"}

    def ed25519(data: bytes) -> bytes:
        return private_key.sign(data)

    def public_key_as_hmac_secret(data: bytes) -> bytes:
        return hmac.new(public_pem, data, hashlib.sha256).digest()

    expired = good | {"iat": now - 7200, "exp": now - 3600}
    without_sub = {key: value for key, value in good.items() if key != "sub"}
    return {
        "alg none": _forge({"alg": "none", "typ": "at+jwt"}, good, lambda _: b""),
        "HS256 with the public key": _forge(
            {"alg": "HS256", "typ": "at+jwt"}, good, public_key_as_hmac_secret
        ),
        "wrong issuer": _forge(eddsa, good | {"iss": "someone-else"}, ed25519),
        "wrong audience": _forge(eddsa, good | {"aud": "someone-else"}, ed25519),
        "missing sub": _forge(eddsa, without_sub, ed25519),
        "expired": _forge(eddsa, expired, ed25519),
        "tampered signature": _forge(eddsa, good, lambda data: bytes(64)),
    }


async def test_every_service_refuses_forged_and_invalid_tokens(system: System) -> None:
    user_id, _ = await _sign_up(system)
    attempts = [
        (system.users, "PATCH", "/users/me", {"bio": "x"}),
        (system.graph, "PUT", f"/users/{user_id}/following/1", None),
        (system.posts, "POST", "/posts", {"text": "forged"}),
        (system.timelines, "GET", "/timelines/home", None),
        (system.notifications, "GET", "/notifications", None),
    ]
    accepted: list[str] = []
    for name, token in _bad_tokens(system, user_id).items():
        for client, method, path, body in attempts:
            response = await client.request(
                method, path, json=body, headers={"Authorization": f"Bearer {token}"}
            )
            if response.status_code != 401 or response.headers["content-type"] != PROBLEM_JSON:
                accepted.append(f"{name}: {method} {path} -> {response.status_code}")
            elif response.json()["type"] != "urn:terrascale:problem:unauthorized":
                accepted.append(f"{name}: {method} {path} -> {response.text}")
            else:
                assert response.headers["www-authenticate"].startswith("Bearer")
    assert accepted == []


# --- API3: mass assignment ------------------------------------------------------------------


async def test_server_owned_fields_cannot_be_set_by_clients(system: System) -> None:
    user_id, auth = await _sign_up(system)
    other, _ = await _sign_up(system)
    name = f"m_{uuid.uuid4().hex[:12]}"
    for forged in (
        {"id": "42"},
        {"created_at": "2000-01-01T00:00:00Z"},
        {"version": 99},
        {"locked_at": None},
        {"password_hash": "x"},
    ):
        response = await system.users.post("/users/", json={"username": name} | forged)
        _assert_problem(response, 422, "validation-error")
    assert (await system.users.get(f"/users/by-username/{name}")).status_code == 404

    before = await _user_row(system, user_id)
    for forged in ({"id": other}, {"username": "taken_over"}, {"version": 99}, {"locked_at": 1}):
        response = await system.users.patch("/users/me", json={"bio": "x"} | forged, headers=auth)
        _assert_problem(response, 422, "validation-error")
    assert await _user_row(system, user_id) == before

    for forged in ({"author_id": other}, {"id": "1"}, {"created_at": "2000-01-01T00:00:00Z"}):
        response = await system.posts.post("/posts", json={"text": "x"} | forged, headers=auth)
        _assert_problem(response, 422, "validation-error")
    assert (await system.posts.get(f"/users/{user_id}/posts")).json() == []
    assert (await system.posts.get(f"/users/{other}/posts")).json() == []

    follow_many = await system.graph.post(
        f"/users/{user_id}/following",
        json={"user_ids": [other], "followers_count": 1_000_000},
        headers=auth,
    )
    _assert_problem(follow_many, 422, "validation-error")
    counts = (await system.graph.get(f"/users/{other}/counts")).json()
    assert (counts["followers"], counts["following"]) == (0, 0)

    mark = await system.notifications.post(
        "/notifications/read", json={"recipient_id": other}, headers=auth
    )
    _assert_problem(mark, 422, "validation-error")


async def _user_row(system: System, user_id: str) -> tuple[Any, ...]:
    engine = create_async_engine(system.databases["users"], poolclass=NullPool)
    try:
        async with engine.connect() as connection:
            row = (
                await connection.execute(
                    text(
                        "SELECT id, username, bio, version, locked_at, created_at "
                        "FROM user_account WHERE id = :id"
                    ),
                    {"id": int(user_id)},
                )
            ).one()
            return tuple(row)
    finally:
        await engine.dispose()


# --- API4: rate limits on writes, per signed-in user ----------------------------------------


async def test_writes_are_limited_per_user_in_every_service(system: System) -> None:
    alice, alice_auth = await _sign_up(system)
    bob, bob_auth = await _sign_up(system)
    for number in range(WRITES_PER_MINUTE):
        response = await system.posts.post(
            "/posts", json={"text": f"#{number}"}, headers=alice_auth
        )
        assert response.status_code == 201, response.text
    limited = await system.posts.post("/posts", json={"text": "one more"}, headers=alice_auth)
    body = _assert_problem(limited, 429, "rate-limited")
    assert body["detail"] == f"Too many requests; at most {WRITES_PER_MINUTE} per minute."
    assert 1 <= int(limited.headers["retry-after"]) <= 60 // WRITES_PER_MINUTE
    # Refused writes store nothing; reads are not limited; Bob has his own allowance.
    posts = (await system.posts.get(f"/users/{alice}/posts", params={"limit": 40})).json()
    assert len(posts) == WRITES_PER_MINUTE
    assert (await system.posts.post("/posts", json={"text": "b"}, headers=bob_auth)).is_success
    # Each service counts its own writes (keys under its own prefix).
    follow = await system.graph.put(f"/users/{alice}/following/{bob}", headers=alice_auth)
    assert follow.status_code == 200
    # A request without a valid token is refused as such before it is counted.
    _assert_problem(await system.posts.post("/posts", json={"text": "x"}), 401, "unauthorized")
