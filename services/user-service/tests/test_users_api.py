"""The User Service contract, through HTTP against real PostgreSQL and Redis."""

from __future__ import annotations

import asyncio

import pytest
from fastapi import FastAPI
from httpx import AsyncClient
from sqlalchemy import text

from terrascale.common.cache import Cache
from terrascale.common.events import (
    Envelope,
    EventSettings,
    UserCreated,
    connect_bus,
    partition_for,
)
from terrascale.common.ids import decode_id
from terrascale.common.testing.helpers import PROBLEM_JSON
from terrascale.users import __version__


def assert_problem(response_json: dict[str, object], *, status: int, path: str) -> None:
    assert response_json["status"] == status
    assert isinstance(response_json["title"], str)
    assert isinstance(response_json["type"], str)
    assert response_json["instance"] == path


async def test_banner_links_to_docs(client: AsyncClient) -> None:
    response = await client.get("/")
    assert response.status_code == 200
    assert response.json() == {
        "service": "user-service",
        "version": __version__,
        "docs": "/docs",
        "openapi": "/openapi.json",
        "health": "/health",
        "ready": "/ready",
        "metrics": "/metrics",
    }


async def test_health_is_ok(client: AsyncClient) -> None:
    response = await client.get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_ready_checks_postgres_and_redis(client: AsyncClient) -> None:
    response = await client.get("/ready")
    assert response.status_code == 200
    assert response.json() == {"status": "ready", "checks": {"postgres": "ok", "redis": "ok"}}


async def test_docs_and_openapi_are_served(client: AsyncClient) -> None:
    docs = await client.get("/docs")
    assert docs.status_code == 200
    assert "swagger" in docs.text.lower()
    spec = (await client.get("/openapi.json")).json()
    create = spec["paths"]["/users/"]["post"]
    assert set(create["responses"]) == {"201", "400", "409", "413", "422", "429"}
    assert PROBLEM_JSON in create["responses"]["400"]["content"]
    assert PROBLEM_JSON in create["responses"]["409"]["content"]
    assert PROBLEM_JSON in create["responses"]["422"]["content"]
    assert "HTTPValidationError" not in spec["components"]["schemas"]
    user_id_schema = spec["components"]["schemas"]["UserRead"]["properties"]["id"]
    assert user_id_schema["type"] == "string"


async def test_create_user_returns_id_as_string(client: AsyncClient, username: str) -> None:
    response = await client.post("/users/", json={"username": username})
    assert response.status_code == 201
    body = response.json()
    assert body == {"id": body["id"], "username": username}
    assert isinstance(body["id"], str)
    assert response.headers["location"] == f"/users/{body['id']}"
    assert decode_id(int(body["id"])).shard < 1024


async def test_sign_up_is_only_at_the_documented_path(client: AsyncClient, username: str) -> None:
    response = await client.post("/users", json={"username": username})
    assert response.status_code == 405
    assert response.headers["allow"] == "GET"
    assert response.headers["content-type"] == PROBLEM_JSON


async def test_a_literal_path_advertises_only_its_own_methods(client: AsyncClient) -> None:
    response = await client.delete("/users/me")
    assert response.status_code == 405
    assert response.headers["allow"] == "GET, PATCH"


async def test_invalid_json_names_the_body_and_the_position(client: AsyncClient) -> None:
    response = await client.post(
        "/users/", content=b'{"username": ', headers={"content-type": "application/json"}
    )
    assert response.status_code == 422
    [error] = response.json()["errors"]
    assert error["field"] == "body"
    assert error["message"].startswith("JSON decode error at character")


async def test_username_is_stored_as_given(client: AsyncClient, username: str) -> None:
    mixed = "Ab_" + username
    created = (await client.post("/users/", json={"username": mixed})).json()
    read = (await client.get(f"/users/{created['id']}")).json()
    assert read["username"] == mixed


@pytest.mark.parametrize("transform", [str, str.upper, str.swapcase])
async def test_taken_username_is_409_regardless_of_case(
    client: AsyncClient, username: str, transform: object
) -> None:
    assert callable(transform)
    assert (await client.post("/users/", json={"username": username})).status_code == 201
    response = await client.post("/users/", json={"username": transform(username)})
    assert response.status_code == 409
    assert response.headers["content-type"] == PROBLEM_JSON
    body = response.json()
    assert_problem(body, status=409, path="/users/")
    assert body["type"] == "urn:terrascale:problem:username-taken"


async def test_concurrent_creates_of_one_name_give_exactly_one_201(
    client: AsyncClient, username: str
) -> None:
    spellings = [username.upper(), username.lower(), username.capitalize()] * 4
    responses = await asyncio.gather(
        *(client.post("/users/", json={"username": name}) for name in spellings)
    )
    statuses = sorted(response.status_code for response in responses)
    assert statuses == [201] + [409] * (len(spellings) - 1)


@pytest.mark.parametrize(
    "payload",
    [
        {"username": "ab"},
        {"username": "a" * 31},
        {"username": "has-dash"},
        {"username": "has space"},
        {"username": "émile_zola"},
        {"username": "trailing\n"},
        {"username": ""},
        {"username": 12345},
        {"username": None},
        {"username": ["alice"]},
        {},
        {"username": "valid_name", "id": "1"},
    ],
)
async def test_invalid_username_is_422_naming_the_field(
    client: AsyncClient, payload: dict[str, object]
) -> None:
    response = await client.post("/users/", json=payload)
    assert response.status_code == 422
    assert response.headers["content-type"] == PROBLEM_JSON
    body = response.json()
    assert_problem(body, status=422, path="/users/")
    fields = {error["field"] for error in body["errors"]}
    assert fields & {"body.username", "body.id"}
    assert "body." in body["detail"]


@pytest.mark.parametrize(
    ("content", "content_type"),
    [
        (b"{not json", "application/json"),
        (b"", "application/json"),
        (b"[]", "application/json"),
        (b'{"username": "form_data"}', "text/plain"),
    ],
)
async def test_unusable_body_is_422(client: AsyncClient, content: bytes, content_type: str) -> None:
    response = await client.post("/users/", content=content, headers={"content-type": content_type})
    assert response.status_code == 422
    assert response.headers["content-type"] == PROBLEM_JSON


async def test_body_that_is_not_utf8_is_400(client: AsyncClient) -> None:
    response = await client.post(
        "/users/", content=b"#f\x05i\xff&", headers={"content-type": "application/json"}
    )
    assert response.status_code == 400
    assert response.headers["content-type"] == PROBLEM_JSON
    assert response.json()["detail"] == "There was an error parsing the body"


async def test_second_read_is_cached(client: AsyncClient, username: str) -> None:
    user_id = (await client.post("/users/", json={"username": username})).json()["id"]
    first = await client.get(f"/users/{user_id}")
    second = await client.get(f"/users/{user_id}")
    assert first.status_code == second.status_code == 200
    profile = {"id": user_id, "username": username, "display_name": None, "bio": None}
    assert first.json() == {**profile, "cached": False}
    assert second.json() == {**profile, "cached": True}
    assert first.headers["content-type"] == second.headers["content-type"] == "application/json"
    assert list(second.json()) == list(first.json())  # same field order from cache and database


@pytest.mark.slow
async def test_cache_entry_expires_after_ttl(
    app: FastAPI, client: AsyncClient, username: str
) -> None:
    cache: Cache = app.state.cache
    cache.ttl_seconds = 1
    user_id = (await client.post("/users/", json={"username": username})).json()["id"]
    assert (await client.get(f"/users/{user_id}")).json()["cached"] is False
    assert (await client.get(f"/users/{user_id}")).json()["cached"] is True
    await asyncio.sleep(1.2)
    assert (await client.get(f"/users/{user_id}")).json()["cached"] is False


async def test_unknown_user_is_404_and_is_not_cached(app: FastAPI, client: AsyncClient) -> None:
    """A read that races a create must not cache "not found": insert the very id that was just
    reported missing and the next read has to find it."""
    user_id = 987_654_321_012
    missing = await client.get(f"/users/{user_id}")
    assert missing.status_code == 404
    assert missing.headers["content-type"] == PROBLEM_JSON
    body = missing.json()
    assert_problem(body, status=404, path=f"/users/{user_id}")
    assert body["type"] == "urn:terrascale:problem:user-not-found"

    async with app.state.session_factory() as session, session.begin():
        await session.execute(
            text("INSERT INTO user_account (id, username) VALUES (:id, :name)"),
            {"id": user_id, "name": f"late_{user_id}"},
        )
    found = await client.get(f"/users/{user_id}")
    assert found.status_code == 200
    assert found.json() == {
        "id": str(user_id),
        "username": f"late_{user_id}",
        "display_name": None,
        "bio": None,
        "cached": False,
    }


@pytest.mark.parametrize(
    "entry",
    [
        b"\x00garbage",
        b"[]",
        b'{"version": 1}',
        b'{"version": 1, "user": "someone"}',
        # Another format: a field missing, or one too many.
        b'{"version": 1, "user": {"id": "1", "username": "old_format"}}',
        b'{"version": 1, "user": {"id": "1", "username": "x", "display_name": null, "bio": null,'
        b' "email": "x@example.com"}}',
    ],
)
async def test_unreadable_cache_entry_is_replaced(
    app: FastAPI, client: AsyncClient, username: str, entry: bytes
) -> None:
    user_id = (await client.post("/users/", json={"username": username})).json()["id"]
    cache: Cache = app.state.cache
    await cache.redis.set(cache.key("user", user_id), entry)
    assert (await client.get(f"/users/{user_id}")).json()["cached"] is False
    assert (await client.get(f"/users/{user_id}")).json() == {
        "id": user_id,
        "username": username,
        "display_name": None,
        "bio": None,
        "cached": True,
    }


@pytest.mark.parametrize(
    "raw_id", ["abc", "-1", "0", "1.5", "9223372036854775808", "99999999999999999999999", "1e3"]
)
async def test_malformed_id_is_422(client: AsyncClient, raw_id: str) -> None:
    response = await client.get(f"/users/{raw_id}")
    assert response.status_code == 422
    assert response.headers["content-type"] == PROBLEM_JSON
    assert [error["field"] for error in response.json()["errors"]] == ["path.user_id"]


async def test_largest_id_is_a_clean_404(client: AsyncClient) -> None:
    response = await client.get("/users/9223372036854775807")
    assert response.status_code == 404


async def test_unknown_route_and_method_are_problems(client: AsyncClient) -> None:
    missing = await client.get("/nope")
    assert missing.status_code == 404
    assert missing.headers["content-type"] == PROBLEM_JSON
    assert_problem(missing.json(), status=404, path="/nope")
    wrong_method = await client.delete("/users/1")
    assert wrong_method.status_code == 405
    assert wrong_method.headers["content-type"] == PROBLEM_JSON
    assert "allow" in wrong_method.headers


async def test_sign_up_publishes_user_created_once(
    app: FastAPI, client: AsyncClient, username: str, event_settings: EventSettings
) -> None:
    user_id = (await client.post("/users/", json={"username": username})).json()["id"]
    bus = await connect_bus(event_settings, app.state.settings)
    published: list[Envelope] = []
    try:
        partition = partition_for(user_id, event_settings.event_partitions)
        for _ in range(100):  # the relay polls every 50 ms
            published = [Envelope.from_json(raw) for raw in await bus.history("user", partition)]
            if published:
                break
            await asyncio.sleep(0.05)
    finally:
        await bus.close()
    assert [(e.type, e.subject, e.source) for e in published] == [
        ("user.created", user_id, "user-service")
    ]
    assert published[0].data_as(UserCreated) == UserCreated(user_id=int(user_id), username=username)
