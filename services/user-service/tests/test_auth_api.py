"""Passwords, tokens and profile updates, through HTTP against real PostgreSQL and Redis."""

from __future__ import annotations

import asyncio
import base64
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi import FastAPI
from httpx import AsyncClient
from sqlalchemy import text

from terrascale.common.auth import AccessTokenIssuer
from terrascale.common.testing.helpers import PROBLEM_JSON


async def login(client: AsyncClient, username: str, password: str) -> Any:
    return await client.post("/auth/token", data={"username": username, "password": password})


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def sql(app: FastAPI, statement: str, **params: object) -> Any:
    async with app.state.session_factory() as session, session.begin():
        result = await session.execute(text(statement), params)
        return result.all() if result.returns_rows else None


# --- sign-up with a password ---------------------------------------------------------------


async def test_password_is_stored_as_argon2id_and_never_returned(
    app: FastAPI, client: AsyncClient, username: str
) -> None:
    response = await client.post("/users/", json={"username": username, "password": "s3cret-pw!"})
    assert response.status_code == 201
    assert set(response.json()) == {"id", "username"}
    [(stored,)] = await sql(
        app, "SELECT password_hash FROM user_account WHERE username = :u", u=username
    )
    assert stored.startswith("$argon2id$")
    assert "s3cret-pw!" not in stored


@pytest.mark.parametrize("password", ["short7!", "x" * 129, 12345678, ""])
async def test_password_length_is_checked_without_echoing_it(
    client: AsyncClient, username: str, password: object
) -> None:
    response = await client.post("/users/", json={"username": username, "password": password})
    assert response.status_code == 422
    assert [error["field"] for error in response.json()["errors"]] == ["body.password"]
    assert str(password) not in response.text or password == ""


# --- sign-in -------------------------------------------------------------------------------


async def test_login_returns_an_eddsa_access_token_for_the_user(
    client: AsyncClient, signed_up: dict[str, str], signing_key: Ed25519PrivateKey
) -> None:
    response = await login(client, signed_up["username"].upper(), signed_up["password"])
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == 900
    header = jwt.get_unverified_header(body["access_token"])
    assert (header["alg"], header["typ"]) == ("EdDSA", "at+jwt")
    public_key = signing_key.public_key()
    claims = jwt.decode(
        body["access_token"], public_key, algorithms=["EdDSA"], audience="terrascale"
    )
    assert claims["sub"] == signed_up["id"]
    assert claims["iss"] == "terrascale"


async def test_all_refusals_look_the_same(
    app: FastAPI, client: AsyncClient, signed_up: dict[str, str], username: str
) -> None:
    no_password = username + "_np"
    assert (await client.post("/users/", json={"username": no_password})).status_code == 201
    locked = username + "_lk"
    await client.post("/users/", json={"username": locked, "password": "right-password"})
    await sql(app, "UPDATE user_account SET locked_at = now() WHERE username = :u", u=locked)

    attempts = [
        (signed_up["username"], "wrong-password"),
        ("nobody_" + username[-10:], "whatever-password"),
        (no_password, "whatever-password"),
        (locked, "right-password"),
        ("not a username!", "whatever-password"),
        (signed_up["username"], "x" * 10_000),
    ]
    bodies = []
    for name, password in attempts:
        response = await login(client, name, password)
        assert response.status_code == 401, name
        assert response.headers["content-type"] == PROBLEM_JSON
        bodies.append(response.json())
    assert all(body == bodies[0] for body in bodies)
    assert bodies[0]["type"] == "urn:terrascale:problem:invalid-credentials"


async def test_repeated_failures_are_rate_limited_per_username(
    app: FastAPI, client: AsyncClient, signed_up: dict[str, str]
) -> None:
    app.state.settings = app.state.settings.model_copy(
        update={"login_max_failures": 3, "login_lockout_seconds": 60}
    )
    name, password = signed_up["username"], signed_up["password"]
    for _ in range(2):
        assert (await login(client, name, "wrong-password")).status_code == 401
    assert (await login(client, name, password)).status_code == 200  # success resets the count
    for _ in range(3):
        assert (await login(client, name, "wrong-password")).status_code == 401
    limited = await login(client, name.upper(), password)  # even the right password, any case
    assert limited.status_code == 429
    assert limited.headers["content-type"] == PROBLEM_JSON
    assert 0 < int(limited.headers["retry-after"]) <= 60
    assert limited.json()["type"] == "urn:terrascale:problem:too-many-login-attempts"


@pytest.mark.parametrize(
    "form",
    [
        {},
        {"username": "someone"},
        {"password": "something"},
        {"username": "a", "password": "b", "grant_type": "client_credentials"},
    ],
)
async def test_malformed_login_form_is_422(client: AsyncClient, form: dict[str, str]) -> None:
    response = await client.post("/auth/token", data=form)
    assert response.status_code == 422
    assert response.headers["content-type"] == PROBLEM_JSON


# --- refresh and sign-out ------------------------------------------------------------------


async def test_refresh_rotates_and_a_replayed_token_revokes_the_family(
    client: AsyncClient, signed_up: dict[str, str]
) -> None:
    first = (await login(client, signed_up["username"], signed_up["password"])).json()
    rotated = await client.post("/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert rotated.status_code == 200
    second = rotated.json()
    assert second["refresh_token"] != first["refresh_token"]
    assert second["access_token"] != first["access_token"]

    replay = await client.post("/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert replay.status_code == 401
    assert replay.json()["type"] == "urn:terrascale:problem:invalid-refresh-token"
    # The replay revoked the whole family, including the token issued by the rotation.
    after = await client.post("/auth/refresh", json={"refresh_token": second["refresh_token"]})
    assert after.status_code == 401


async def test_concurrent_refreshes_with_one_token_succeed_once(
    client: AsyncClient, signed_up: dict[str, str]
) -> None:
    token = (await login(client, signed_up["username"], signed_up["password"])).json()
    responses = await asyncio.gather(
        *(
            client.post("/auth/refresh", json={"refresh_token": token["refresh_token"]})
            for _ in range(4)
        )
    )
    assert sorted(r.status_code for r in responses) == [200, 401, 401, 401]


@pytest.mark.parametrize("case", ["unknown", "expired", "locked"])
async def test_unusable_refresh_tokens_are_401(
    app: FastAPI, client: AsyncClient, signed_up: dict[str, str], case: str
) -> None:
    token = (await login(client, signed_up["username"], signed_up["password"])).json()
    refresh = token["refresh_token"]
    if case == "unknown":
        refresh = "not-a-token-we-issued"
    elif case == "expired":
        await sql(
            app,
            "UPDATE refresh_token SET expires_at = now() - interval '1 second' WHERE user_id = :id",
            id=int(signed_up["id"]),
        )
    else:
        await sql(
            app, "UPDATE user_account SET locked_at = now() WHERE id = :id", id=int(signed_up["id"])
        )
    response = await client.post("/auth/refresh", json={"refresh_token": refresh})
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")


async def test_logout_revokes_the_session(client: AsyncClient, signed_up: dict[str, str]) -> None:
    token = (await login(client, signed_up["username"], signed_up["password"])).json()
    assert (
        await client.post("/auth/logout", json={"refresh_token": token["refresh_token"]})
    ).status_code == 204
    again = await client.post("/auth/refresh", json={"refresh_token": token["refresh_token"]})
    assert again.status_code == 401
    unknown = await client.post("/auth/logout", json={"refresh_token": "never-issued"})
    assert unknown.status_code == 204


# --- who may act -----------------------------------------------------------------------------


def unsigned_token(claims: dict[str, Any]) -> str:
    """An ``alg: none`` JWT, built by hand: libraries rightly refuse to make one."""

    def part(value: dict[str, Any]) -> str:
        raw = json.dumps(value, default=lambda moment: int(moment.timestamp())).encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    return f"{part({'alg': 'none', 'typ': 'at+jwt'})}.{part(claims)}."


def forged_tokens(user_id: str, real_key: Ed25519PrivateKey) -> dict[str, str]:
    now = datetime.now(UTC)
    claims = {
        "sub": user_id,
        "iss": "terrascale",
        "aud": "terrascale",
        "iat": now,
        "exp": now + timedelta(minutes=5),
    }
    other_key = Ed25519PrivateKey.generate()
    valid = AccessTokenIssuer(real_key, "terrascale", "terrascale", 900).issue(int(user_id))
    head, payload, signature = valid.split(".")
    tampered_signature = signature[:-2] + ("AA" if not signature.endswith("AA") else "BB")
    other_subject = base64.urlsafe_b64encode(b'{"sub": "1"}').decode().rstrip("=")
    return {
        "expired": AccessTokenIssuer(real_key, "terrascale", "terrascale", 60).issue(
            int(user_id), now=now - timedelta(hours=1)
        ),
        "tampered signature": f"{head}.{payload}.{tampered_signature}",
        "tampered subject": f"{head}.{other_subject}.{signature}",
        "other key": jwt.encode(claims, other_key, algorithm="EdDSA", headers={"typ": "at+jwt"}),
        "alg none": unsigned_token(claims),
        "wrong audience": jwt.encode(
            {**claims, "aud": "elsewhere"}, real_key, algorithm="EdDSA", headers={"typ": "at+jwt"}
        ),
        "not an access token": jwt.encode(
            claims, real_key, algorithm="EdDSA", headers={"typ": "JWT"}
        ),
        "garbage": "not.a.jwt",
    }


@pytest.mark.parametrize(
    "kind",
    [
        "missing",
        "expired",
        "tampered signature",
        "tampered subject",
        "other key",
        "alg none",
        "wrong audience",
        "not an access token",
        "garbage",
    ],
)
async def test_profile_update_rejects_bad_tokens(
    client: AsyncClient, signed_up: dict[str, str], signing_key: Ed25519PrivateKey, kind: str
) -> None:
    headers = {} if kind == "missing" else bearer(forged_tokens(signed_up["id"], signing_key)[kind])
    response = await client.patch("/users/me", json={"display_name": "Mallory"}, headers=headers)
    assert response.status_code == 401
    assert response.headers["content-type"] == PROBLEM_JSON
    assert response.headers["www-authenticate"].startswith("Bearer")
    profile = (await client.get(f"/users/{signed_up['id']}")).json()
    assert profile["display_name"] is None


# --- profile -------------------------------------------------------------------------------


async def test_profile_update_is_visible_at_once_even_through_the_cache(
    client: AsyncClient, signed_up: dict[str, str], access_token: str
) -> None:
    user_path = f"/users/{signed_up['id']}"
    await client.get(user_path)
    assert (await client.get(user_path)).json()["cached"] is True

    response = await client.patch(
        "/users/me",
        json={"display_name": "Ada", "bio": "Line one\nLine two"},
        headers=bearer(access_token),
    )
    assert response.status_code == 200
    assert response.json() == {
        "id": signed_up["id"],
        "username": signed_up["username"],
        "display_name": "Ada",
        "bio": "Line one\nLine two",
    }
    for _ in range(2):
        read = (await client.get(user_path)).json()
        assert (read["display_name"], read["bio"]) == ("Ada", "Line one\nLine two")

    cleared = await client.patch("/users/me", json={"bio": None}, headers=bearer(access_token))
    assert (cleared.json()["display_name"], cleared.json()["bio"]) == ("Ada", None)
    assert (await client.get(user_path)).json()["bio"] is None


async def test_an_older_cache_fill_cannot_overwrite_a_newer_profile(app: FastAPI) -> None:
    cache = app.state.cache
    key = cache.key("user", 42)
    newer = '{"version": 3, "user": {"id": "42", "username": "new"}}'
    older = '{"version": 2, "user": {"id": "42", "username": "old"}}'
    await cache.set_if_newer(key, newer, version=3)
    await cache.set_if_newer(key, older, version=2)
    assert (await cache.get(key)).decode() == newer


@pytest.mark.parametrize(
    "body",
    [
        {"username": "renamed"},
        {"id": "1"},
        {"display_name": ""},
        {"display_name": "x" * 51},
        {"display_name": "tab\there"},
        {"bio": "x" * 301},
        {"bio": "bell\x07"},
        {"display_name": 5},
    ],
)
async def test_invalid_profile_updates_are_422(
    client: AsyncClient, access_token: str, body: dict[str, object]
) -> None:
    response = await client.patch("/users/me", json=body, headers=bearer(access_token))
    assert response.status_code == 422
    assert response.headers["content-type"] == PROBLEM_JSON


async def test_own_profile_needs_a_token(
    client: AsyncClient, signed_up: dict[str, str], access_token: str
) -> None:
    assert (await client.get("/users/me")).status_code == 401
    response = await client.get("/users/me", headers=bearer(access_token))
    assert response.status_code == 200
    assert (response.json()["id"], response.json()["username"]) == (
        signed_up["id"],
        signed_up["username"],
    )


async def test_empty_update_changes_nothing(
    client: AsyncClient, signed_up: dict[str, str], access_token: str
) -> None:
    response = await client.patch("/users/me", json={}, headers=bearer(access_token))
    assert response.status_code == 200
    assert response.json()["username"] == signed_up["username"]


# --- lookups for other services ------------------------------------------------------------


async def test_lookup_by_username_ignores_case(
    client: AsyncClient, signed_up: dict[str, str]
) -> None:
    response = await client.get(f"/users/by-username/{signed_up['username'].upper()}")
    assert response.status_code == 200
    assert response.json()["id"] == signed_up["id"]
    assert (await client.get("/users/by-username/nobody_at_all")).status_code == 404
    assert (await client.get("/users/by-username/bad-name")).status_code == 422


async def test_batch_lookup_keeps_order_and_skips_unknown_ids(
    client: AsyncClient, username: str
) -> None:
    ids = []
    for suffix in ("a", "b", "c"):
        created = await client.post("/users/", json={"username": f"{username}_{suffix}"})
        ids.append(created.json()["id"])
    await client.get(f"/users/{ids[1]}")  # one of them cached, the others not

    wanted = [ids[2], "999999999999", ids[0], ids[1], ids[2]]
    for query in (f"ids={','.join(wanted)}", "&".join(f"ids={i}" for i in wanted)):
        response = await client.get(f"/users?{query}")
        assert response.status_code == 200
        assert [user["id"] for user in response.json()] == [ids[2], ids[0], ids[1]]


@pytest.mark.parametrize(
    "query",
    ["", "ids=", "ids=abc", "ids=1,-2", "ids=0", "ids=" + ",".join(str(i) for i in range(1, 102))],
)
async def test_bad_batch_lookups_are_422(client: AsyncClient, query: str) -> None:
    response = await client.get(f"/users?{query}")
    assert response.status_code == 422
    assert response.headers["content-type"] == PROBLEM_JSON
