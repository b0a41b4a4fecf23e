"""Hydration against upstreams speaking HTTP, through this service's cache in Redis: order kept,
deleted posts left out, authors attached, a second page served from the cache, and every way an
upstream (or the cache) can fail mapped to a 503 (posts), a missing author or a cache miss."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import httpx
import pytest
from fastapi import FastAPI
from redis.asyncio import Redis

from terrascale.common.testing.helpers import free_port
from terrascale.timelines.cache import HydrationCache
from terrascale.timelines.errors import PostServiceUnavailableError
from terrascale.timelines.hydration import Hydrator, TimelineItem

# Post id -> author id, as the projections give them; 99 is deleted or unknown upstream.
PAGE = {13: 1, 99: 1, 12: 2, 11: 1}


def _summary(page: list[TimelineItem]) -> list[tuple[str, str | None]]:
    return [(post["id"], post["author"]["username"] if post["author"] else None) for post in page]


@pytest.fixture
async def hydrator(
    request: pytest.FixtureRequest,
    upstream_app: Callable[[str], FastAPI],
    hydration_cache: HydrationCache,
) -> AsyncIterator[Hydrator]:
    transport = httpx.ASGITransport(app=upstream_app(getattr(request, "param", "ok")))
    async with (
        httpx.AsyncClient(transport=transport, base_url="http://posts") as posts,
        httpx.AsyncClient(transport=transport, base_url="http://users") as users,
    ):
        yield Hydrator(posts=posts, users=users, cache=hydration_cache, timeout_seconds=0.3)


async def test_posts_keep_the_page_order_and_carry_their_authors(hydrator: Hydrator) -> None:
    page = await hydrator.hydrate(PAGE)
    assert _summary(page) == [("13", "ada"), ("12", "bob"), ("11", "ada")]
    assert page[0] == {
        "id": "13",
        "author_id": "1",
        "text": "post 13",
        "reply_to": None,
        "mentions": [],
        "hashtags": [],
        "urls": [],
        "created_at": "2026-01-01T00:00:00Z",
        "author": {"id": "1", "username": "ada", "display_name": None},
    }


async def test_a_page_seen_before_comes_from_the_cache(hydrator: Hydrator) -> None:
    first = await hydrator.hydrate(PAGE)
    await hydrator.posts.aclose()  # would raise if it were used
    await hydrator.users.aclose()
    assert await hydrator.hydrate({12: 2, 11: 1}) == first[1:]


async def test_an_empty_page_asks_nobody(hydrator: Hydrator) -> None:
    await hydrator.posts.aclose()  # would raise if it were used
    assert await hydrator.hydrate({}) == []


@pytest.mark.parametrize("hydrator", ["users-fail"], indirect=True)
async def test_without_the_user_service_posts_come_without_authors(hydrator: Hydrator) -> None:
    page = await hydrator.hydrate({11: 1, 12: 2})
    assert _summary(page) == [("11", None), ("12", None)]
    # Nothing was cached for the authors: the next page asks again.
    assert (await hydrator.cache.get([], [1, 2]))[1] == {}


@pytest.mark.parametrize("hydrator", ["posts-fail", "posts-garbage", "posts-slow"], indirect=True)
async def test_a_failing_post_service_is_a_503(hydrator: Hydrator) -> None:
    with pytest.raises(PostServiceUnavailableError):
        await hydrator.hydrate({11: 1})


async def test_without_redis_every_page_asks_the_upstreams(
    upstream_app: Callable[[str], FastAPI], redis_key_prefix: str
) -> None:
    nowhere = Redis(port=free_port(), socket_connect_timeout=0.2)
    cache = HydrationCache(nowhere, key_prefix=redis_key_prefix, post_seconds=1, author_seconds=1)
    transport = httpx.ASGITransport(app=upstream_app("ok"))
    async with (
        httpx.AsyncClient(transport=transport, base_url="http://posts") as posts,
        httpx.AsyncClient(transport=transport, base_url="http://users") as users,
    ):
        hydrator = Hydrator(posts=posts, users=users, cache=cache, timeout_seconds=1)
        for _ in range(2):
            assert _summary(await hydrator.hydrate({11: 1})) == [("11", "ada")]
    await nowhere.aclose()


class _ClosesFirstConnection(httpx.AsyncBaseTransport):
    """The upstream closed the pooled connection just as the first request reused it."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner
        self.failures = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self.failures == 0:
            self.failures += 1
            raise httpx.RemoteProtocolError("Server disconnected without sending a response.")
        return await self.inner.handle_async_request(request)


async def test_a_connection_closed_under_a_request_is_retried_once(
    upstream_app: Callable[[str], FastAPI], hydration_cache: HydrationCache
) -> None:
    inner = httpx.ASGITransport(app=upstream_app("ok"))
    async with (
        httpx.AsyncClient(transport=_ClosesFirstConnection(inner), base_url="http://p") as posts,
        httpx.AsyncClient(transport=_ClosesFirstConnection(inner), base_url="http://u") as users,
    ):
        hydrator = Hydrator(posts=posts, users=users, cache=hydration_cache, timeout_seconds=1)
        page = await hydrator.hydrate({11: 1})
    assert _summary(page) == [("11", "ada")]
