"""Turning a page of post ids into posts with their authors: what this service's cache lacks
comes from the Post Service and the User Service, in one batch call each, made together (the
projections already know each post's author)."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any, TypeVar

import httpx
import orjson
from opentelemetry.propagate import inject
from pydantic import TypeAdapter, ValidationError

from terrascale.common.logging import get_logger
from terrascale.timelines.cache import HydrationCache
from terrascale.timelines.errors import PostServiceUnavailableError
from terrascale.timelines.schemas import Author, Post

logger = get_logger(__name__)

T = TypeVar("T")

_POSTS = TypeAdapter(list[Post])
_AUTHORS = TypeAdapter(list[Author])

# A ``TimelinePost`` as JSON-ready data: built from cached JSON, so not validated again.
TimelineItem = dict[str, Any]


class UpstreamError(Exception):
    """The upstream could not give a usable answer (refused, too slow, an error or a body it
    should not send)."""


@dataclass(frozen=True, slots=True)
class Hydrator:
    posts: httpx.AsyncClient  # base_url is the Post Service
    users: httpx.AsyncClient  # base_url is the User Service
    cache: HydrationCache
    timeout_seconds: float

    async def hydrate(self, authors_of: Mapping[int, int]) -> list[TimelineItem]:
        """The posts (post id -> author id, in page order), leaving out deleted and unknown
        ones. The Post Service failing is a 503 when it has posts to give (there is nothing to
        show); the User Service failing only leaves ``author`` empty."""
        if not authors_of:
            return []
        author_ids = list(dict.fromkeys(authors_of.values()))
        posts, authors = await self.cache.get(list(authors_of), author_ids)
        fetched_posts, fetched_authors = await asyncio.gather(
            self._fetch_posts([post_id for post_id in authors_of if post_id not in posts]),
            self._fetch_authors([author for author in author_ids if author not in authors]),
        )
        await self.cache.store(fetched_posts, fetched_authors)
        posts.update(fetched_posts)
        authors.update(fetched_authors)
        return [
            {**orjson.loads(posts[post_id]), "author": _loads(authors.get(author_id))}
            for post_id, author_id in authors_of.items()
            if post_id in posts
        ]

    async def _fetch_posts(self, post_ids: Sequence[int]) -> dict[int, bytes]:
        if not post_ids:
            return {}
        try:
            posts = await self._batch(self.posts, "/posts", post_ids, _POSTS)
        except UpstreamError:
            raise PostServiceUnavailableError(
                "The Post Service cannot be reached, so the timeline cannot be shown; retry "
                "shortly."
            ) from None
        return {post.id: post.model_dump_json().encode() for post in posts}

    async def _fetch_authors(self, author_ids: Sequence[int]) -> dict[int, bytes]:
        if not author_ids:
            return {}
        try:
            authors = await self._batch(self.users, "/users", author_ids, _AUTHORS)
        except UpstreamError:
            return {}
        return {author.id: author.model_dump_json().encode() for author in authors}

    async def _batch(
        self, client: httpx.AsyncClient, path: str, ids: Sequence[int], adapter: TypeAdapter[T]
    ) -> T:
        headers: dict[str, str] = {}
        inject(headers)  # carry the trace upstream
        params = {"ids": ",".join(map(str, ids))}
        try:
            # httpx's timeout applies to each phase; this bounds the whole call.
            async with asyncio.timeout(self.timeout_seconds):
                try:
                    response = await client.get(path, params=params, headers=headers)
                except httpx.RemoteProtocolError:
                    # A pooled connection the server closed as we reused it: the GET is safe
                    # to send again, once, on a fresh connection.
                    response = await client.get(path, params=params, headers=headers)
        except (httpx.HTTPError, TimeoutError) as exc:
            logger.warning("upstream unreachable", upstream=str(client.base_url), error=repr(exc))
            raise UpstreamError from exc
        if response.status_code != HTTPStatus.OK:
            logger.warning(
                "upstream failed", upstream=str(client.base_url), status=response.status_code
            )
            raise UpstreamError
        try:
            return adapter.validate_json(response.content)
        except ValidationError as exc:
            logger.warning(
                "upstream sent an unexpected body", upstream=str(client.base_url), error=repr(exc)
            )
            raise UpstreamError from exc


def _loads(value: bytes | None) -> dict[str, Any] | None:
    return None if value is None else orjson.loads(value)
