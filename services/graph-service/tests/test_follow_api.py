"""Follow, unfollow, relationship and counts through HTTP, against real PostgreSQL and Redis."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from httpx import AsyncClient

from terrascale.common.ids import MAX_ID
from terrascale.common.testing.helpers import PROBLEM_JSON, log_events, serve_app
from terrascale.graph import __version__
from terrascale.graph.app import create_app

KnownUser = Callable[[], Awaitable[int]]
Auth = Callable[[int], dict[str, str]]
Sql = Callable[..., Awaitable[list[Any]]]


def assert_problem(response: Any, *, status: int, slug: str | None = None) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM_JSON
    body = response.json()
    assert body["status"] == status
    assert body["instance"] == response.request.url.path
    if slug is not None:
        assert body["type"] == f"urn:terrascale:problem:{slug}"
    return body


async def outbox(sql: Sql, follower_id: int, followee_id: int) -> list[str]:
    """Types of the events recorded for one pair, oldest first."""
    rows = await sql(
        "SELECT type FROM outbox_event WHERE subject = :subject "
        "AND payload->'data'->>'followee_id' = :followee ORDER BY seq",
        subject=str(follower_id),
        followee=str(followee_id),
    )
    return [row.type for row in rows]


# --- operations ----------------------------------------------------------------------------


async def test_banner_health_ready_and_docs(client: AsyncClient) -> None:
    banner = await client.get("/")
    assert banner.json()["service"] == "graph-service"
    assert banner.json()["version"] == __version__
    assert (await client.get("/health")).json() == {"status": "ok"}
    ready = await client.get("/ready")
    assert ready.status_code == 200
    assert ready.json() == {"status": "ready", "checks": {"postgres": "ok", "redis": "ok"}}
    assert (await client.get("/docs")).status_code == 200


async def test_openapi_documents_every_problem(client: AsyncClient) -> None:
    spec = (await client.get("/openapi.json")).json()
    follow = spec["paths"]["/users/{user_id}/following/{target_id}"]
    limited = {"200", "401", "403", "404", "422", "429", "503"}
    assert set(follow["put"]["responses"]) == limited
    assert set(follow["delete"]["responses"]) == limited
    followers = spec["paths"]["/users/{user_id}/followers"]["get"]
    assert set(followers["responses"]) == {"200", "400", "422"}
    assert "Link" in followers["responses"]["200"]["headers"]
    assert PROBLEM_JSON in followers["responses"]["400"]["content"]
    relationship = spec["components"]["schemas"]["Relationship"]["properties"]
    assert relationship["user_id"]["type"] == "string"


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("PATCH", "/users/1/following/2", "DELETE, PUT"),
        ("OPTIONS", "/users/1/following/2", "DELETE, PUT"),
        ("POST", "/users/1/followers", "GET"),
        ("DELETE", "/users/1/counts", "GET"),
    ],
)
async def test_method_not_allowed_lists_every_method_of_the_path(
    client: AsyncClient, method: str, path: str, allow: str
) -> None:
    response = await client.request(method, path)
    assert_problem(response, status=405)
    assert response.headers["allow"] == allow


async def test_other_http_errors_keep_their_own_headers(client: AsyncClient) -> None:
    assert_problem(await client.get("/no/such/route"), status=404)
    # Not in the OpenAPI document: the router's own Allow stands.
    docs = await client.post("/docs")
    assert_problem(docs, status=405)
    assert docs.headers["allow"] in ("GET, HEAD", "HEAD, GET")
    for _ in range(2):  # the second answer comes from the paths read the first time
        again = await client.request("PATCH", "/users/7/following/8")
        assert again.headers["allow"] == "DELETE, PUT"


# --- follow and unfollow -------------------------------------------------------------------


async def test_follow_then_unfollow(
    client: AsyncClient, known_user: KnownUser, auth: Auth, sql: Sql
) -> None:
    alice, bob = await known_user(), await known_user()
    followed = await client.put(f"/users/{alice}/following/{bob}", headers=auth(alice))
    assert followed.status_code == 200
    assert followed.json() == {
        "user_id": str(alice),
        "target_id": str(bob),
        "following": True,
        "followed_by": False,
    }
    back = await client.put(f"/users/{bob}/following/{alice}", headers=auth(bob))
    assert back.json()["following"] is True
    assert back.json()["followed_by"] is True

    relationship = await client.get(f"/users/{alice}/relationship/{bob}")
    assert relationship.json() == {
        "user_id": str(alice),
        "target_id": str(bob),
        "following": True,
        "followed_by": True,
    }
    assert (await client.get(f"/users/{alice}/counts")).json() == {
        "user_id": str(alice),
        "followers": 1,
        "following": 1,
    }

    unfollowed = await client.delete(f"/users/{alice}/following/{bob}", headers=auth(alice))
    assert unfollowed.status_code == 200
    assert unfollowed.json()["following"] is False
    assert unfollowed.json()["followed_by"] is True
    assert (await client.get(f"/users/{bob}/counts")).json() == {
        "user_id": str(bob),
        "followers": 0,
        "following": 1,
    }
    # Both directions are written and removed together.
    edges = await sql(
        "SELECT (SELECT count(*) FROM following_edge WHERE follower_id = :a), "
        "(SELECT count(*) FROM follower_edge WHERE followee_id = :b AND follower_id = :a)",
        a=alice,
        b=bob,
    )
    assert tuple(edges[0]) == (0, 0)


async def test_follow_and_unfollow_are_idempotent_and_emit_once(
    client: AsyncClient, known_user: KnownUser, auth: Auth, sql: Sql
) -> None:
    alice, bob = await known_user(), await known_user()
    for _ in range(3):
        response = await client.put(f"/users/{alice}/following/{bob}", headers=auth(alice))
        assert response.status_code == 200
        assert response.json()["following"] is True
    assert await outbox(sql, alice, bob) == ["follow.created"]
    assert (await client.get(f"/users/{bob}/counts")).json()["followers"] == 1

    for _ in range(3):
        response = await client.delete(f"/users/{alice}/following/{bob}", headers=auth(alice))
        assert response.status_code == 200
        assert response.json()["following"] is False
    assert await outbox(sql, alice, bob) == ["follow.created", "follow.deleted"]
    assert (await client.get(f"/users/{bob}/counts")).json()["followers"] == 0

    await client.put(f"/users/{alice}/following/{bob}", headers=auth(alice))
    assert await outbox(sql, alice, bob) == ["follow.created", "follow.deleted", "follow.created"]


async def test_events_carry_the_pair_and_the_source(
    client: AsyncClient, known_user: KnownUser, auth: Auth, sql: Sql
) -> None:
    alice, bob = await known_user(), await known_user()
    await client.put(f"/users/{alice}/following/{bob}", headers=auth(alice))
    rows = await sql(
        "SELECT payload FROM outbox_event WHERE subject = :s AND type = 'follow.created'",
        s=str(alice),
    )
    assert len(rows) == 1
    envelope = rows[0].payload
    assert envelope["source"] == "graph-service"
    assert envelope["data"] == {"follower_id": str(alice), "followee_id": str(bob)}


async def test_unfollowing_someone_not_followed_changes_nothing(
    client: AsyncClient, known_user: KnownUser, auth: Auth, sql: Sql
) -> None:
    alice, bob = await known_user(), await known_user()
    response = await client.delete(f"/users/{alice}/following/{bob}", headers=auth(alice))
    assert response.status_code == 200
    assert response.json()["following"] is False
    assert await outbox(sql, alice, bob) == []
    assert (await client.get(f"/users/{bob}/counts")).json()["followers"] == 0


# --- refusals ------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["PUT", "DELETE"])
async def test_without_a_token_is_401(
    client: AsyncClient, known_user: KnownUser, method: str
) -> None:
    alice, bob = await known_user(), await known_user()
    response = await client.request(method, f"/users/{alice}/following/{bob}")
    assert_problem(response, status=401, slug="unauthorized")
    assert response.headers["www-authenticate"] == "Bearer"


async def test_expired_token_is_401(
    client: AsyncClient, known_user: KnownUser, token: Callable[..., str]
) -> None:
    alice, bob = await known_user(), await known_user()
    expired = token(alice, now=datetime.now(UTC) - timedelta(hours=1), ttl=timedelta(minutes=15))
    response = await client.put(
        f"/users/{alice}/following/{bob}", headers={"Authorization": f"Bearer {expired}"}
    )
    body = assert_problem(response, status=401, slug="unauthorized")
    assert "expired" in body["detail"]
    assert 'error="invalid_token"' in response.headers["www-authenticate"]


def _tamper(jwt_text: str) -> str:
    """Swap the subject in the payload and keep the signature: it no longer matches."""
    header, payload, signature = jwt_text.split(".")
    return f"{header}.{payload[:-2]}{'A' if payload[-2] != 'A' else 'B'}{payload[-1]}.{signature}"


@pytest.mark.parametrize(
    "make_token",
    [
        pytest.param(lambda token, user: _tamper(token(user)), id="tampered-payload"),
        pytest.param(
            lambda token, user: (
                token(user)[:-4] + ("AAAA" if token(user)[-4:] != "AAAA" else "BBBB")
            ),
            id="tampered-signature",
        ),
        pytest.param(
            lambda token, user: token(user, key=Ed25519PrivateKey.generate()), id="other-key"
        ),
        pytest.param(lambda token, user: token(user, token_type="JWT"), id="not-an-access-token"),
        pytest.param(lambda token, user: token(user, aud="elsewhere"), id="wrong-audience"),
        pytest.param(lambda token, user: "not-a-jwt", id="garbage"),
    ],
)
async def test_invalid_token_is_401(
    client: AsyncClient,
    known_user: KnownUser,
    token: Callable[..., str],
    make_token: Callable[[Callable[..., str], int], str],
) -> None:
    alice, bob = await known_user(), await known_user()
    response = await client.put(
        f"/users/{alice}/following/{bob}",
        headers={"Authorization": f"Bearer {make_token(token, alice)}"},
    )
    assert_problem(response, status=401, slug="unauthorized")


@pytest.mark.parametrize("method", ["PUT", "DELETE"])
async def test_changing_another_users_graph_is_403(
    client: AsyncClient, known_user: KnownUser, auth: Auth, sql: Sql, method: str
) -> None:
    alice, bob, mallory = await known_user(), await known_user(), await known_user()
    response = await client.request(
        method, f"/users/{alice}/following/{bob}", headers=auth(mallory)
    )
    assert_problem(response, status=403, slug="forbidden")
    assert await outbox(sql, alice, bob) == []


@pytest.mark.parametrize("method", ["PUT", "DELETE"])
async def test_following_yourself_is_422(
    client: AsyncClient, known_user: KnownUser, auth: Auth, method: str
) -> None:
    alice = await known_user()
    response = await client.request(
        method, f"/users/{alice}/following/{alice}", headers=auth(alice)
    )
    assert_problem(response, status=422, slug="self-follow")


@pytest.mark.parametrize("bad", ["abc", "0", "-5", str(MAX_ID + 1), "1.5", "99999999999999999999"])
async def test_bad_ids_are_422(
    client: AsyncClient, known_user: KnownUser, auth: Auth, bad: str
) -> None:
    alice = await known_user()
    as_target = await client.put(f"/users/{alice}/following/{bad}", headers=auth(alice))
    assert_problem(as_target, status=422, slug="validation-error")
    for path in (
        f"/users/{bad}/followers",
        f"/users/{bad}/counts",
        f"/users/{alice}/relationship/{bad}",
    ):
        assert_problem(await client.get(path), status=422, slug="validation-error")


async def test_unknown_target_is_404_and_stores_nothing(
    client: AsyncClient, known_user: KnownUser, auth: Auth, new_id: Callable[[], int], sql: Sql
) -> None:
    alice, ghost = await known_user(), new_id()
    for method in ("PUT", "DELETE"):
        response = await client.request(
            method, f"/users/{alice}/following/{ghost}", headers=auth(alice)
        )
        assert_problem(response, status=404, slug="user-not-found")
    assert await outbox(sql, alice, ghost) == []
    assert (await client.get(f"/users/{alice}/counts")).json()["following"] == 0


# --- reads ---------------------------------------------------------------------------------


async def test_reads_are_public_and_empty_for_strangers(
    client: AsyncClient, new_id: Callable[[], int]
) -> None:
    """Reads answer from the graph alone: an id with no edges has zero counts and empty
    lists, without asking the User Service whether it exists."""
    nobody, other = new_id(), new_id()
    assert (await client.get(f"/users/{nobody}/counts")).json() == {
        "user_id": str(nobody),
        "followers": 0,
        "following": 0,
    }
    for kind in ("followers", "following"):
        page = await client.get(f"/users/{nobody}/{kind}")
        assert page.status_code == 200
        assert page.json() == {"items": [], "next_cursor": None}
        assert "link" not in page.headers
    relationship = await client.get(f"/users/{nobody}/relationship/{other}")
    assert relationship.json()["following"] is False
    assert relationship.json()["followed_by"] is False


async def test_without_a_public_key_writes_fail_loudly_and_reads_work(
    make_settings: Callable[..., Any],
    event_settings: Any,
    known_user: KnownUser,
    auth: Auth,
    capsys: pytest.CaptureFixture[str],
) -> None:
    alice, bob = await known_user(), await known_user()
    app = create_app(make_settings(jwt_public_key=None), event_settings)
    async with serve_app(app) as client:
        response = await client.put(f"/users/{alice}/following/{bob}", headers=auth(alice))
        assert_problem(response, status=500)
        assert (await client.get(f"/users/{bob}/counts")).status_code == 200
    assert log_events(
        capsys.readouterr().out,
        "JWT_PUBLIC_KEY is not set; follow and unfollow will fail until it is",
    )


# --- following several users at once ---------------------------------------------------------


async def test_follow_many_follows_each_once_with_events_and_counts(
    client: AsyncClient, known_user: KnownUser, auth: Auth, sql: Sql
) -> None:
    alice, bob, carol, dave = [await known_user() for _ in range(4)]
    await client.put(f"/users/{carol}/following/{alice}", headers=auth(carol))
    await client.put(f"/users/{alice}/following/{dave}", headers=auth(alice))
    response = await client.post(
        f"/users/{alice}/following",
        json={"user_ids": [str(bob), carol, str(bob), dave]},
        headers=auth(alice),
    )
    assert response.status_code == 200, response.text
    assert [(item["target_id"], item["followed_by"]) for item in response.json()] == [
        (str(bob), False),
        (str(carol), True),
        (str(dave), False),
    ]
    assert all(item["following"] for item in response.json())
    # Dave was followed already: no second event, no second count.
    assert await outbox(sql, alice, bob) == ["follow.created"]
    assert await outbox(sql, alice, dave) == ["follow.created"]
    assert (await client.get(f"/users/{alice}/counts")).json()["following"] == 3
    for followee in (bob, carol, dave):
        assert (await client.get(f"/users/{followee}/counts")).json()["followers"] == 1


async def test_follow_many_is_all_or_nothing(
    client: AsyncClient, known_user: KnownUser, auth: Auth, user_service: Any, sql: Sql
) -> None:
    alice, bob = await known_user(), await known_user()
    missing = 9_000_000_000_123
    response = await client.post(
        f"/users/{alice}/following", json={"user_ids": [bob, missing]}, headers=auth(alice)
    )
    assert_problem(response, status=404, slug="user-not-found")
    assert await outbox(sql, alice, bob) == []
    assert (await client.get(f"/users/{alice}/counts")).json()["following"] == 0

    myself = await client.post(
        f"/users/{alice}/following", json={"user_ids": [bob, alice]}, headers=auth(alice)
    )
    assert_problem(myself, status=422, slug="self-follow")


async def test_follow_many_rejects_bad_requests(
    client: AsyncClient, known_user: KnownUser, auth: Auth
) -> None:
    alice, bob = await known_user(), await known_user()
    path = f"/users/{alice}/following"
    assert_problem(await client.post(path, json={"user_ids": [bob]}), status=401)
    assert_problem(await client.post(path, json={"user_ids": [bob]}, headers=auth(bob)), status=403)
    for body in ({"user_ids": []}, {"user_ids": ["x"]}, {"ids": [bob]}, [bob]):
        problem = assert_problem(
            await client.post(path, json=body, headers=auth(alice)), status=422
        )
        assert problem["errors"]
    too_many = {"user_ids": list(range(1, 102))}
    assert_problem(await client.post(path, json=too_many, headers=auth(alice)), status=422)
