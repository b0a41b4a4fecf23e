"""Hydration against upstreams speaking HTTP: order kept, deleted posts left out, authors
attached, and every way an upstream can fail mapped to a 503 (posts) or a missing author."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import httpx
import pytest
from fastapi import FastAPI

from terrascale.timelines.errors import PostServiceUnavailableError
from terrascale.timelines.hydration import Hydrator


@pytest.fixture
async def hydrator(
    request: pytest.FixtureRequest, upstream_app: Callable[[str], FastAPI]
) -> AsyncIterator[Hydrator]:
    transport = httpx.ASGITransport(app=upstream_app(getattr(request, "param", "ok")))
    async with (
        httpx.AsyncClient(transport=transport, base_url="http://posts") as posts,
        httpx.AsyncClient(transport=transport, base_url="http://users") as users,
    ):
        yield Hydrator(posts=posts, users=users, timeout_seconds=0.3)


async def test_posts_keep_the_page_order_and_carry_their_authors(hydrator: Hydrator) -> None:
    page = await hydrator.hydrate([13, 99, 12, 11])  # 99: deleted or unknown
    assert [post.id for post in page] == [13, 12, 11]
    assert [post.author.username if post.author else None for post in page] == ["ada", "bob", "ada"]


async def test_an_empty_page_asks_nobody(hydrator: Hydrator) -> None:
    await hydrator.posts.aclose()  # would raise if it were used
    assert await hydrator.hydrate([]) == []


@pytest.mark.parametrize("hydrator", ["users-fail"], indirect=True)
async def test_without_the_user_service_posts_come_without_authors(hydrator: Hydrator) -> None:
    page = await hydrator.hydrate([11, 12])
    assert [post.id for post in page] == [11, 12]
    assert all(post.author is None for post in page)


@pytest.mark.parametrize("hydrator", ["posts-fail", "posts-garbage", "posts-slow"], indirect=True)
async def test_a_failing_post_service_is_a_503(hydrator: Hydrator) -> None:
    with pytest.raises(PostServiceUnavailableError):
        await hydrator.hydrate([11])


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
    upstream_app: Callable[[str], FastAPI],
) -> None:
    inner = httpx.ASGITransport(app=upstream_app("ok"))
    async with (
        httpx.AsyncClient(transport=_ClosesFirstConnection(inner), base_url="http://p") as posts,
        httpx.AsyncClient(transport=_ClosesFirstConnection(inner), base_url="http://u") as users,
    ):
        page = await Hydrator(posts=posts, users=users, timeout_seconds=1).hydrate([11])
    assert [(post.id, post.author.username if post.author else None) for post in page] == [
        (11, "ada")
    ]
