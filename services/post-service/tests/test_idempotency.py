"""``Idempotency-Key`` on ``POST /posts``: a retry returns the first post, never a second one,
also when the retries race each other."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from httpx import AsyncClient
from sqlalchemy import func, select, text, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from terrascale.common.events import Envelope, EventSettings
from terrascale.common.testing.helpers import PROBLEM_JSON, log_events, serve_app
from terrascale.posts import service as post_service
from terrascale.posts.app import create_app
from terrascale.posts.config import PostSettings
from terrascale.posts.models import Post, PostIdempotencyKey
from terrascale.posts.repository import PostRepository

Headers = dict[str, str]


async def count_posts(engine: AsyncEngine, author: int) -> int:
    async with engine.connect() as connection:
        return (
            await connection.scalar(
                select(func.count()).select_from(Post).where(Post.author_id == author)
            )
            or 0
        )


async def test_a_retry_returns_the_same_post(
    client: AsyncClient, author: int, author_headers: Headers, engine: AsyncEngine
) -> None:
    headers = {**author_headers, "Idempotency-Key": str(uuid.uuid4())}
    first = await client.post("/posts", json={"text": "once"}, headers=headers)
    assert first.status_code == 201
    assert "idempotent-replayed" not in first.headers
    retry = await client.post("/posts", json={"text": "once"}, headers=headers)
    assert retry.status_code == 201
    assert retry.headers["idempotent-replayed"] == "true"
    assert retry.headers["location"] == first.headers["location"]
    assert retry.json() == first.json()
    assert await count_posts(engine, author) == 1


async def test_the_same_request_with_the_id_as_a_number_is_a_retry(
    client: AsyncClient, author_headers: Headers
) -> None:
    parent = (await client.post("/posts", json={"text": "parent"}, headers=author_headers)).json()
    headers = {**author_headers, "Idempotency-Key": "reply-1"}
    first = await client.post(
        "/posts", json={"text": "re", "reply_to": parent["id"]}, headers=headers
    )
    retry = await client.post(
        "/posts", json={"text": "re", "reply_to": int(parent["id"])}, headers=headers
    )
    assert retry.headers["idempotent-replayed"] == "true"
    assert retry.json() == first.json()


async def test_a_different_body_with_the_same_key_is_422(
    client: AsyncClient, author: int, author_headers: Headers, engine: AsyncEngine
) -> None:
    headers = {**author_headers, "Idempotency-Key": "key-1"}
    assert (await client.post("/posts", json={"text": "a"}, headers=headers)).status_code == 201
    response = await client.post("/posts", json={"text": "b"}, headers=headers)
    assert response.status_code == 422
    assert response.headers["content-type"] == PROBLEM_JSON
    assert response.json()["type"] == "urn:terrascale:problem:idempotency-key-reused"
    assert await count_posts(engine, author) == 1


async def test_keys_belong_to_their_author(
    client: AsyncClient,
    author_headers: Headers,
    new_user_id: Callable[[], int],
    auth: Callable[[int], Headers],
) -> None:
    key = {"Idempotency-Key": "shared-key"}
    mine = await client.post("/posts", json={"text": "x"}, headers={**author_headers, **key})
    theirs = await client.post("/posts", json={"text": "x"}, headers={**auth(new_user_id()), **key})
    assert theirs.status_code == 201
    assert "idempotent-replayed" not in theirs.headers
    assert theirs.json()["id"] != mine.json()["id"]


async def test_concurrent_retries_create_one_post(
    client: AsyncClient,
    author: int,
    author_headers: Headers,
    engine: AsyncEngine,
    outbox_events: Callable[[str], Awaitable[list[Envelope]]],
) -> None:
    headers = {**author_headers, "Idempotency-Key": str(uuid.uuid4())}
    responses = await asyncio.gather(
        *(client.post("/posts", json={"text": "race"}, headers=headers) for _ in range(10))
    )
    assert [response.status_code for response in responses] == [201] * 10
    assert len({response.json()["id"] for response in responses}) == 1
    replayed = [response.headers.get("idempotent-replayed") for response in responses]
    assert replayed.count("true") == 9
    assert await count_posts(engine, author) == 1
    assert len(await outbox_events(responses[0].json()["id"])) == 1


async def test_a_retry_after_a_failed_first_request_creates_the_post(
    client: AsyncClient, author_headers: Headers
) -> None:
    """A request that failed committed nothing, its key included."""
    headers = {**author_headers, "Idempotency-Key": "after-failure"}
    failed = await client.post("/posts", json={"text": "x", "reply_to": "1"}, headers=headers)
    assert failed.status_code == 422
    parent = (await client.post("/posts", json={"text": "parent"}, headers=author_headers)).json()
    created = await client.post("/posts", json={"text": "x"}, headers=headers)
    assert created.status_code == 201
    assert "idempotent-replayed" not in created.headers
    assert created.json()["id"] != parent["id"]


async def test_a_replay_returns_the_original_even_after_a_delete(
    client: AsyncClient, author_headers: Headers
) -> None:
    headers = {**author_headers, "Idempotency-Key": "deleted-later"}
    first = (await client.post("/posts", json={"text": "bye"}, headers=headers)).json()
    await client.delete(f"/posts/{first['id']}", headers=author_headers)
    retry = await client.post("/posts", json={"text": "bye"}, headers=headers)
    assert retry.status_code == 201
    assert retry.json() == first


async def test_an_expired_key_can_be_used_again(
    client: AsyncClient, author: int, author_headers: Headers, engine: AsyncEngine
) -> None:
    headers = {**author_headers, "Idempotency-Key": "expires"}
    first = (await client.post("/posts", json={"text": "old"}, headers=headers)).json()
    async with engine.begin() as connection:
        await connection.execute(
            update(PostIdempotencyKey)
            .where(PostIdempotencyKey.author_id == author)
            .values(created_at=datetime.now(UTC) - timedelta(hours=25))
        )
    second = await client.post("/posts", json={"text": "new"}, headers=headers)
    assert second.status_code == 201
    assert "idempotent-replayed" not in second.headers
    assert second.json()["id"] != first["id"]
    replay = await client.post("/posts", json={"text": "new"}, headers=headers)
    assert replay.json()["id"] == second.json()["id"]


@pytest.mark.parametrize(
    "key",
    ["", "x" * 256, "has space", "caf\u00e9", "tab\tkey"],
    ids=["empty", "too-long", "space", "non-ascii", "control"],
)
async def test_malformed_keys_are_422(
    client: AsyncClient, author_headers: Headers, key: str
) -> None:
    response = await client.post(
        "/posts",
        json={"text": "x"},
        headers=[
            *((name.encode(), value.encode()) for name, value in author_headers.items()),
            (b"Idempotency-Key", key.encode("latin-1")),
        ],
    )
    assert response.status_code == 422
    assert "header.idempotency-key" in response.json()["detail"]


async def test_longest_key_is_accepted(client: AsyncClient, author_headers: Headers) -> None:
    key = "".join(chr(33 + n % 94) for n in range(255))  # every visible ASCII character
    response = await client.post(
        "/posts", json={"text": "x"}, headers={**author_headers, "Idempotency-Key": key}
    )
    assert response.status_code == 201


async def test_purge_deletes_only_expired_keys(
    client: AsyncClient,
    author: int,
    author_headers: Headers,
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    for key in ("fresh", "stale-1", "stale-2"):
        headers = {**author_headers, "Idempotency-Key": key}
        await client.post("/posts", json={"text": key}, headers=headers)
    async with session_factory.begin() as session:
        await session.execute(
            text(
                "UPDATE post_idempotency_key SET created_at = now() - interval '2 days' "
                "WHERE author_id = :author AND key LIKE 'stale-%'"
            ),
            {"author": author},
        )
    async with session_factory.begin() as session:
        purged = await post_service.purge_expired_idempotency_keys(
            posts=PostRepository(session), ttl=timedelta(days=1), batch_size=1
        )
    assert purged == 1  # one batch of one
    async with session_factory.begin() as session:
        await post_service.purge_expired_idempotency_keys(
            posts=PostRepository(session), ttl=timedelta(days=1)
        )
        left = await session.scalars(
            select(PostIdempotencyKey.key).where(PostIdempotencyKey.author_id == author)
        )
        assert list(left) == ["fresh"]


async def test_the_app_purges_expired_keys_in_the_background(
    build_settings: Callable[..., PostSettings],
    event_settings: EventSettings,
    author: int,
    author_headers: Headers,
    engine: AsyncEngine,
) -> None:
    app = create_app(build_settings(idempotency_purge_interval_seconds=0.05), event_settings)
    async with serve_app(app) as client:
        headers = {**author_headers, "Idempotency-Key": "purged"}
        assert (await client.post("/posts", json={"text": "x"}, headers=headers)).status_code == 201
        async with engine.begin() as connection:
            await connection.execute(
                update(PostIdempotencyKey)
                .where(PostIdempotencyKey.author_id == author)
                .values(created_at=datetime.now(UTC) - timedelta(days=2))
            )
        left = None
        for _ in range(100):
            async with engine.connect() as connection:
                left = await connection.scalar(
                    select(func.count())
                    .select_from(PostIdempotencyKey)
                    .where(PostIdempotencyKey.author_id == author)
                )
            if left == 0:
                break
            await asyncio.sleep(0.05)
        assert left == 0


async def test_a_key_purged_between_claim_and_read_is_a_409_to_retry(
    client: AsyncClient, author_headers: Headers, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A key that exists when claimed and is gone when read: it expired and was purged between
    the two statements."""

    async def taken(*args: Any, **kwargs: Any) -> None:
        return None

    monkeypatch.setattr(PostRepository, "claim_idempotency_key", taken)
    monkeypatch.setattr(PostRepository, "get_by_idempotency_key", taken)
    headers = {**author_headers, "Idempotency-Key": "k"}
    response = await client.post("/posts", json={"text": "x"}, headers=headers)
    assert response.status_code == 409
    assert response.json()["type"].endswith(":idempotency-key-busy")


async def test_a_failing_purge_is_logged_and_retried(
    build_settings: Callable[..., PostSettings],
    event_settings: EventSettings,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    calls = 0

    async def failing(**kwargs: Any) -> int:
        nonlocal calls
        calls += 1
        raise RuntimeError("database on fire")

    monkeypatch.setattr(post_service, "purge_expired_idempotency_keys", failing)
    app = create_app(build_settings(idempotency_purge_interval_seconds=0.01), event_settings)
    async with serve_app(app):
        for _ in range(100):
            if calls >= 2:
                break
            await asyncio.sleep(0.01)
    assert calls >= 2
    assert log_events(capsys.readouterr().out, "idempotency key purge failed; retrying later")
