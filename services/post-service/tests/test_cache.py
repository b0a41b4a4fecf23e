"""Cache-aside reads of posts: hits, versioned entries, tombstones, and a delete that no
concurrent reader can undo."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from fastapi import FastAPI
from httpx import AsyncClient
from redis.asyncio import Redis
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from terrascale.common.cache import Cache
from terrascale.posts import service as post_service
from terrascale.posts.cache import PostCache
from terrascale.posts.models import Post
from terrascale.posts.repository import PostRepository
from terrascale.posts.schemas import CachedPost

Headers = dict[str, str]


def post_cache(app: FastAPI) -> PostCache:
    return PostCache(app.state.cache)


async def test_reads_fill_the_cache_and_then_come_from_it(
    app: FastAPI, client: AsyncClient, author_headers: Headers, engine: AsyncEngine
) -> None:
    post = (await client.post("/posts", json={"text": "cached"}, headers=author_headers)).json()
    post_id = int(post["id"])
    cache = post_cache(app)
    # Written through after the commit, for the timelines that hydrate it next.
    entries = await cache.get_many([post_id])
    assert entries[post_id].version == 1
    assert entries[post_id].post is not None
    assert entries[post_id].model_dump(mode="json")["post"] == post

    # Proof that reads use the cache: change the row behind its back.
    async with engine.begin() as connection:
        await connection.execute(update(Post).where(Post.id == post_id).values(text="x"))
    assert (await client.get(f"/posts/{post_id}")).json()["text"] == "cached"
    await cache.delete(post_id)
    assert (await client.get(f"/posts/{post_id}")).json()["text"] == "x"
    assert (await cache.get_many([post_id]))[post_id].post is not None


async def test_delete_leaves_a_tombstone_of_the_next_version(
    app: FastAPI, client: AsyncClient, author_headers: Headers
) -> None:
    post = (await client.post("/posts", json={"text": "gone"}, headers=author_headers)).json()
    post_id = int(post["id"])
    await client.delete(f"/posts/{post_id}", headers=author_headers)
    assert (await post_cache(app).get_many([post_id]))[post_id] == CachedPost(version=2, post=None)
    assert (await client.get("/posts", params={"ids": post["id"]})).json() == []


async def test_a_reader_that_loaded_the_post_before_the_delete_cannot_cache_it_again(
    app: FastAPI,
    client: AsyncClient,
    author_headers: Headers,
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    post = (await client.post("/posts", json={"text": "race"}, headers=author_headers)).json()
    post_id = int(post["id"])
    cache = post_cache(app)
    await cache.delete(post_id)
    # A slow reader loads the row, then the delete commits, then the reader fills the cache.
    async with session_factory() as session:
        [stale] = await PostRepository(session).get_many([post_id])
    await client.delete(f"/posts/{post_id}", headers=author_headers)
    await cache.store_many({post_id: post_service.cache_entry(stale)})
    assert (await cache.get_many([post_id]))[post_id].post is None
    assert (await client.get("/posts", params={"ids": post["id"]})).json() == []
    assert (await client.get(f"/posts/{post_id}")).status_code == 404


async def test_a_deleted_post_missing_from_the_cache_gets_a_tombstone(
    app: FastAPI, client: AsyncClient, author_headers: Headers
) -> None:
    post = (await client.post("/posts", json={"text": "x"}, headers=author_headers)).json()
    post_id = int(post["id"])
    await client.delete(f"/posts/{post_id}", headers=author_headers)
    cache = post_cache(app)
    await cache.delete(post_id)  # expired, say
    assert (await client.get(f"/posts/{post_id}")).status_code == 404
    assert (await cache.get_many([post_id]))[post_id] == CachedPost(version=2, post=None)


async def test_the_tombstone_is_written_after_the_commit(
    app: FastAPI,
    client: AsyncClient,
    author_headers: Headers,
    session_factory: async_sessionmaker[AsyncSession],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Seen from another connection, the delete has committed when the tombstone is written,
    and the response waits for it (so the client's next read cannot see the post)."""
    post = (await client.post("/posts", json={"text": "order"}, headers=author_headers)).json()
    post_id = int(post["id"])
    seen: list[bool] = []
    original = PostCache.store_many

    async def observing_store_many(self: PostCache, entries: dict[int, CachedPost]) -> None:
        async with session_factory() as session:
            deleted_at = await session.scalar(select(Post.deleted_at).where(Post.id == post_id))
        seen.append(deleted_at is not None)
        await original(self, entries)

    monkeypatch.setattr(PostCache, "store_many", observing_store_many)
    assert (await client.delete(f"/posts/{post_id}", headers=author_headers)).status_code == 204
    assert seen == [True]


async def test_a_failed_request_writes_nothing_to_the_cache(
    app: FastAPI,
    client: AsyncClient,
    author_headers: Headers,
    new_user_id: Callable[[], int],
    auth: Callable[[int], Headers],
) -> None:
    post = (await client.post("/posts", json={"text": "mine"}, headers=author_headers)).json()
    post_id = int(post["id"])
    await client.delete(f"/posts/{post_id}", headers=auth(new_user_id()))  # 403
    entry = (await post_cache(app).get_many([post_id]))[post_id]
    assert entry.version == 1
    assert entry.post is not None


async def test_unreadable_entries_are_misses(
    app: FastAPI, client: AsyncClient, author_headers: Headers
) -> None:
    post = (await client.post("/posts", json={"text": "x"}, headers=author_headers)).json()
    cache: Cache = app.state.cache
    key = post_cache(app).key(int(post["id"]))
    await cache.set(key, b"{not json")
    assert (await client.get(f"/posts/{post['id']}")).json() == post
    assert (await post_cache(app).get_many([int(post["id"])]))[int(post["id"])].version == 1


async def test_cache_keys_stay_under_the_configured_prefix(
    app: FastAPI, client: AsyncClient, author_headers: Headers, redis_key_prefix: str
) -> None:
    post = (await client.post("/posts", json={"text": "x"}, headers=author_headers)).json()
    redis: Redis = app.state.redis
    assert await redis.exists(f"{redis_key_prefix}post:{post['id']}") == 1
