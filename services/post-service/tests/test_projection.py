"""The users projection mentions resolve against: filled by the worker from ``user.created``,
idempotently, and used by ``POST /posts``."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable

import pytest
from httpx import AsyncClient
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from terrascale.common.events import (
    Envelope,
    EventSettings,
    InvalidEventError,
    UserCreated,
    UserUpdated,
    connect_bus,
)
from terrascale.common.testing.helpers import log_events, serve_app
from terrascale.posts.app import create_worker
from terrascale.posts.config import PostSettings
from terrascale.posts.consumer import CONSUMER_GROUP, apply_user_created, user_projection_handler
from terrascale.posts.models import KnownUser

Headers = dict[str, str]


async def known(engine: AsyncEngine, user_id: int) -> str | None:
    async with engine.connect() as connection:
        return await connection.scalar(select(KnownUser.username).where(KnownUser.id == user_id))


async def test_worker_projects_user_created_from_the_bus(
    *,
    settings: PostSettings,
    event_settings: EventSettings,
    engine: AsyncEngine,
    new_user_id: Callable[[], int],
    client: AsyncClient,
    author_headers: Headers,
) -> None:
    user_id, username = new_user_id(), f"Grace_{uuid.uuid4().hex[:8]}"
    created = Envelope.wrap(UserCreated(user_id=user_id, username=username), source="user-service")
    updated = Envelope.wrap(
        UserUpdated(user_id=user_id, display_name="G", bio=None), source="user-service"
    )
    bus = await connect_bus(event_settings, settings)
    try:
        # Published twice: a relay that crashed after publishing publishes again.
        await bus.publish([created, created, updated])
    finally:
        await bus.close()

    async with serve_app(create_worker(settings, event_settings)):
        for _ in range(200):
            if await known(engine, user_id) is not None:
                break
            await asyncio.sleep(0.05)
        assert await known(engine, user_id) == username

    response = await client.post(
        "/posts", json={"text": f"thanks @{username.lower()}"}, headers=author_headers
    )
    assert response.json()["mentions"] == [{"user_id": str(user_id), "username": username}]
    async with engine.connect() as connection:
        rows = await connection.scalar(
            select(func.count()).select_from(KnownUser).where(KnownUser.id == user_id)
        )
        inbox = await connection.scalar(
            select(func.count())
            .select_from(KnownUser.metadata.tables["processed_event"])
            .where(KnownUser.metadata.tables["processed_event"].c.event_id == created.id)
        )
    assert rows == 1
    assert inbox == 1


async def test_handler_applies_each_event_once(
    session_factory: async_sessionmaker[AsyncSession],
    engine: AsyncEngine,
    new_user_id: Callable[[], int],
    capsys: pytest.CaptureFixture[str],
) -> None:
    handle = user_projection_handler(session_factory)
    user_id = new_user_id()
    envelope = Envelope.wrap(UserCreated(user_id=user_id, username="ada_x1"), source="test")
    await handle(envelope)
    await handle(envelope)  # a redelivery: the inbox makes it a no-op
    assert await known(engine, user_id) == "ada_x1"
    assert log_events(capsys.readouterr().out, "user already known; user.created ignored") == []


async def test_a_second_user_created_for_a_known_name_keeps_the_first(
    session_factory: async_sessionmaker[AsyncSession],
    engine: AsyncEngine,
    new_user_id: Callable[[], int],
    capsys: pytest.CaptureFixture[str],
) -> None:
    first, second = new_user_id(), new_user_id()
    name = f"dup_{uuid.uuid4().hex[:8]}"
    async with session_factory.begin() as session:
        await apply_user_created(
            session, Envelope.wrap(UserCreated(user_id=first, username=name), source="test")
        )
    async with session_factory.begin() as session:
        await apply_user_created(
            session,
            Envelope.wrap(UserCreated(user_id=second, username=name.upper()), source="test"),
        )
    assert await known(engine, first) == name
    assert await known(engine, second) is None
    [warning] = log_events(capsys.readouterr().out, "user already known; user.created ignored")
    assert warning["user_id"] == second


async def test_other_user_events_are_acknowledged_without_a_transaction(
    session_factory: async_sessionmaker[AsyncSession],
    engine: AsyncEngine,
    new_user_id: Callable[[], int],
) -> None:
    user_id = new_user_id()
    handle = user_projection_handler(session_factory)
    updated = Envelope.wrap(UserUpdated(user_id=user_id, display_name=None, bio=None), source="x")
    await handle(updated)
    async with engine.connect() as connection:
        inbox = KnownUser.metadata.tables["processed_event"]
        rows = await connection.scalar(
            select(func.count()).select_from(inbox).where(inbox.c.event_id == updated.id)
        )
    assert rows == 0
    assert CONSUMER_GROUP == "post-service"


async def test_a_malformed_user_created_is_refused(
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    handle = user_projection_handler(session_factory)
    bad = Envelope.wrap(UserCreated(user_id=1, username="abc"), source="test").model_copy(
        update={"data": {"user_id": "not an id"}}
    )
    with pytest.raises(InvalidEventError):
        await handle(bad)


async def test_mentions_resolve_case_insensitively_and_in_order(
    client: AsyncClient,
    author_headers: Headers,
    remember_user: Callable[..., Awaitable[tuple[int, str]]],
) -> None:
    ada_id, ada = await remember_user()
    bob_id, bob = await remember_user()
    text = f"@{bob.upper()} meets @{ada} (cc @{bob}, @unknown_person, mail x@{ada}.com)"
    response = await client.post("/posts", json={"text": text}, headers=author_headers)
    assert response.status_code == 201
    assert response.json()["mentions"] == [
        {"user_id": str(bob_id), "username": bob},
        {"user_id": str(ada_id), "username": ada},
    ]
    assert response.json()["text"] == text  # mentions stay in the text as written
