"""Whether a follow target exists: the projection first, then the User Service over real HTTP
(a stand-in served by uvicorn in this session), refused, hung or misbehaving."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from httpx import AsyncClient

from terrascale.common.ids import decode_id
from terrascale.common.testing.helpers import PROBLEM_JSON, free_port, serve_app, silent_listener
from terrascale.graph.app import create_app

KnownUser = Callable[[], Awaitable[int]]
Auth = Callable[[int], dict[str, str]]
Sql = Callable[..., Awaitable[list[Any]]]


async def projected(sql: Sql, user_id: int) -> list[Any]:
    return await sql("SELECT username, created_at FROM known_user WHERE id = :id", id=user_id)


async def test_projection_hit_does_not_ask_the_user_service(
    client: AsyncClient, known_user: KnownUser, auth: Auth, user_service: Any
) -> None:
    alice, bob = await known_user(), await known_user()
    response = await client.put(f"/users/{alice}/following/{bob}", headers=auth(alice))
    assert response.status_code == 200
    assert bob not in user_service.lookups


async def test_projection_miss_asks_the_user_service_and_remembers(
    *,
    client: AsyncClient,
    known_user: KnownUser,
    auth: Auth,
    new_id: Callable[[], int],
    user_service: Any,
    sql: Sql,
) -> None:
    alice, newcomer = await known_user(), new_id()
    user_service.add(newcomer, "newcomer")
    response = await client.put(f"/users/{alice}/following/{newcomer}", headers=auth(alice))
    assert response.status_code == 200
    assert response.json()["following"] is True
    assert user_service.lookups.count(newcomer) == 1
    [row] = await projected(sql, newcomer)
    assert row.username == "newcomer"
    assert row.created_at == decode_id(newcomer).created_at

    # Known now: the next follow of the same user is answered by the projection.
    carol = await known_user()
    assert (
        await client.put(f"/users/{carol}/following/{newcomer}", headers=auth(carol))
    ).status_code == 200
    assert user_service.lookups.count(newcomer) == 1


async def test_user_service_404_is_a_404(
    client: AsyncClient, known_user: KnownUser, auth: Auth, new_id: Callable[[], int], sql: Sql
) -> None:
    alice, ghost = await known_user(), new_id()
    response = await client.put(f"/users/{alice}/following/{ghost}", headers=auth(alice))
    assert response.status_code == 404
    assert response.json()["type"] == "urn:terrascale:problem:user-not-found"
    assert await projected(sql, ghost) == []


async def test_existing_follow_is_removed_without_asking_anyone(
    client: AsyncClient, known_user: KnownUser, auth: Auth, user_service: Any, sql: Sql
) -> None:
    alice, bob = await known_user(), await known_user()
    await client.put(f"/users/{alice}/following/{bob}", headers=auth(alice))
    await sql("DELETE FROM known_user WHERE id = :id", id=bob)  # as if never projected
    response = await client.delete(f"/users/{alice}/following/{bob}", headers=auth(alice))
    assert response.status_code == 200
    assert response.json()["following"] is False
    assert bob not in user_service.lookups


@pytest.mark.parametrize("failure", ["broken", "garbled"])
async def test_failing_or_garbled_answers_are_503(
    *,
    client: AsyncClient,
    known_user: KnownUser,
    auth: Auth,
    new_id: Callable[[], int],
    user_service: Any,
    sql: Sql,
    failure: str,
) -> None:
    alice, target = await known_user(), new_id()
    getattr(user_service, failure).add(target)
    response = await client.put(f"/users/{alice}/following/{target}", headers=auth(alice))
    assert response.status_code == 503
    assert response.headers["content-type"] == PROBLEM_JSON
    assert response.headers["retry-after"] == "1"
    assert response.json()["type"] == "urn:terrascale:problem:user-service-unavailable"
    assert await projected(sql, target) == []


async def _follow_unknown_with(
    make_settings: Callable[..., Any],
    event_settings: Any,
    known_user: KnownUser,
    new_id: Callable[[], int],
    auth: Auth,
    **overrides: object,
) -> Any:
    alice, stranger = await known_user(), new_id()
    async with serve_app(create_app(make_settings(**overrides), event_settings)) as client:
        return await client.put(f"/users/{alice}/following/{stranger}", headers=auth(alice))


async def test_user_service_refusing_connections_is_503(
    make_settings: Callable[..., Any],
    event_settings: Any,
    known_user: KnownUser,
    new_id: Callable[[], int],
    auth: Auth,
) -> None:
    response = await _follow_unknown_with(
        make_settings,
        event_settings,
        known_user,
        new_id,
        auth,
        user_service_url=f"http://127.0.0.1:{free_port()}",
    )
    assert response.status_code == 503
    assert response.json()["type"] == "urn:terrascale:problem:user-service-unavailable"


async def test_hung_user_service_is_503_within_the_timeout(
    make_settings: Callable[..., Any],
    event_settings: Any,
    known_user: KnownUser,
    new_id: Callable[[], int],
    auth: Auth,
) -> None:
    started = time.monotonic()
    with silent_listener() as port:
        response = await _follow_unknown_with(
            make_settings,
            event_settings,
            known_user,
            new_id,
            auth,
            user_service_url=f"http://127.0.0.1:{port}",
            user_service_timeout_seconds=0.3,
        )
    assert response.status_code == 503
    assert time.monotonic() - started < 3  # app start-up and shutdown included


async def test_a_404_from_something_else_is_not_taken_for_no_such_user(
    *,
    make_settings: Callable[..., Any],
    event_settings: Any,
    known_user: KnownUser,
    new_id: Callable[[], int],
    auth: Auth,
    user_service: Any,
) -> None:
    """A wrong USER_SERVICE_URL path (every route a plain 404) must not make users vanish."""
    response = await _follow_unknown_with(
        make_settings,
        event_settings,
        known_user,
        new_id,
        auth,
        user_service_url=f"{user_service.url}/wrong-prefix",
    )
    assert response.status_code == 503


async def test_answer_about_another_user_is_503(
    *,
    make_settings: Callable[..., Any],
    event_settings: Any,
    known_user: KnownUser,
    new_id: Callable[[], int],
    auth: Auth,
    user_service: Any,
) -> None:
    """A proxy that rewrites paths (or a mix-up) answering with someone else is not a yes."""
    alice, asked, answered = await known_user(), new_id(), new_id()
    user_service.add(answered)
    settings = make_settings()
    app = create_app(settings, event_settings)
    async with serve_app(app) as client:
        original = app.state.user_directory.client

        async def swap_ids(request: Any) -> None:
            request.url = request.url.copy_with(path=f"/users/{answered}")

        original.event_hooks["request"].append(swap_ids)
        response = await client.put(f"/users/{alice}/following/{asked}", headers=auth(alice))
    assert response.status_code == 503


async def test_a_follow_list_of_newcomers_asks_the_user_service_once(
    *,
    client: AsyncClient,
    known_user: KnownUser,
    auth: Auth,
    new_id: Callable[[], int],
    user_service: Any,
    sql: Sql,
) -> None:
    alice, known = await known_user(), await known_user()
    newcomers = [new_id() for _ in range(3)]
    for index, newcomer in enumerate(newcomers):
        user_service.add(newcomer, f"newcomer_{index}")
    batches_before = len(user_service.batches)
    response = await client.post(
        f"/users/{alice}/following", json={"user_ids": [known, *newcomers]}, headers=auth(alice)
    )
    assert response.status_code == 200
    assert user_service.batches[batches_before:] == [sorted(newcomers)]
    assert not set(newcomers) & set(user_service.lookups)
    for index, newcomer in enumerate(newcomers):
        [row] = await projected(sql, newcomer)
        assert row.username == f"newcomer_{index}"


@pytest.mark.parametrize("failure", ["broken", "garbled"])
async def test_a_follow_list_the_user_service_cannot_confirm_is_503(
    *,
    client: AsyncClient,
    known_user: KnownUser,
    auth: Auth,
    new_id: Callable[[], int],
    user_service: Any,
    sql: Sql,
    failure: str,
) -> None:
    alice, newcomer = await known_user(), new_id()
    user_service.add(newcomer)
    getattr(user_service, failure).add(newcomer)
    response = await client.post(
        f"/users/{alice}/following", json={"user_ids": [newcomer]}, headers=auth(alice)
    )
    assert response.status_code == 503
    assert response.headers["content-type"] == PROBLEM_JSON
    assert await projected(sql, newcomer) == []
