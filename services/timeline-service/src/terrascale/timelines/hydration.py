"""Turning a page of post ids into posts with their authors: one batch call to the Post Service,
then one to the User Service for the authors of what came back."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from http import HTTPStatus
from typing import TypeVar

import httpx
from opentelemetry.propagate import inject
from pydantic import TypeAdapter, ValidationError

from terrascale.common.logging import get_logger
from terrascale.timelines.errors import PostServiceUnavailableError
from terrascale.timelines.schemas import Author, Post, TimelinePost

logger = get_logger(__name__)

T = TypeVar("T")

_POSTS = TypeAdapter(list[Post])
_AUTHORS = TypeAdapter(list[Author])


class UpstreamError(Exception):
    """The upstream could not give a usable answer (refused, too slow, an error or a body it
    should not send)."""


@dataclass(frozen=True, slots=True)
class Hydrator:
    posts: httpx.AsyncClient  # base_url is the Post Service
    users: httpx.AsyncClient  # base_url is the User Service
    timeout_seconds: float

    async def hydrate(self, post_ids: Sequence[int]) -> list[TimelinePost]:
        """The posts in the order given, leaving out deleted and unknown ones. The Post Service
        failing is a 503 (there is nothing to show); the User Service failing only leaves
        ``author`` empty."""
        if not post_ids:
            return []
        try:
            posts = await self._batch(self.posts, "/posts", post_ids, _POSTS)
        except UpstreamError:
            raise PostServiceUnavailableError(
                "The Post Service cannot be reached, so the timeline cannot be shown; retry "
                "shortly."
            ) from None
        author_ids = list(dict.fromkeys(post.author_id for post in posts))
        try:
            authors = {
                author.id: author
                for author in await self._batch(self.users, "/users", author_ids, _AUTHORS)
            }
        except UpstreamError:
            authors = {}
        return [
            TimelinePost(**post.model_dump(), author=authors.get(post.author_id)) for post in posts
        ]

    async def _batch(
        self, client: httpx.AsyncClient, path: str, ids: Sequence[int], adapter: TypeAdapter[T]
    ) -> T:
        if not ids:
            return adapter.validate_python([])
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
