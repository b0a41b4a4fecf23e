"""Redis down: reads fall back to PostgreSQL, writes still succeed, /ready says which failed."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from terrascale.common.events import EventSettings
from terrascale.common.testing.helpers import free_port, log_events, serve_app
from terrascale.posts.app import create_app
from terrascale.posts.config import PostSettings

Headers = dict[str, str]


async def test_without_redis_posts_are_written_and_read_from_postgres(
    build_settings: Callable[..., PostSettings],
    event_settings: EventSettings,
    author: int,
    author_headers: Headers,
) -> None:
    settings = build_settings(redis_port=free_port(), cache_retry_after_seconds=0.01)
    async with serve_app(create_app(settings, event_settings)) as client:
        ready = await client.get("/ready")
        assert ready.status_code == 503
        assert ready.json()["checks"]["redis"] != "ok"

        created = await client.post("/posts", json={"text": "still works"}, headers=author_headers)
        assert created.status_code == 201
        post = created.json()
        assert (await client.get(f"/posts/{post['id']}")).json() == post
        assert (await client.get("/posts", params={"ids": post["id"]})).json() == [post]
        assert (await client.get(f"/users/{author}/posts")).json() == [post]
        deleted = await client.delete(f"/posts/{post['id']}", headers=author_headers)
        assert deleted.status_code == 204
        assert (await client.get(f"/posts/{post['id']}")).status_code == 404


async def test_without_a_public_key_writes_fail_and_reads_work(
    build_settings: Callable[..., PostSettings],
    event_settings: EventSettings,
    author_headers: Headers,
    capsys: pytest.CaptureFixture[str],
) -> None:
    settings = build_settings(jwt_public_key=None)
    app = create_app(settings, event_settings)
    [warning] = log_events(
        capsys.readouterr().out,
        "JWT_PUBLIC_KEY is not set; requests that need a signed-in user will fail",
    )
    assert warning["level"] == "warning"
    async with serve_app(app) as client:
        response = await client.post("/posts", json={"text": "x"}, headers=author_headers)
        assert response.status_code == 500
        assert response.headers["content-type"] == "application/problem+json"
        assert (await client.get("/posts/1")).status_code == 404
