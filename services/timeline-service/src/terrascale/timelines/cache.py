"""This service's copies of the posts and authors it hydrates pages with, in its own Redis.

Filled from the Post and User Services' batch answers (cache-aside), so a page whose posts and
authors were seen before costs one MGET instead of two HTTP calls. Values are the JSON this
service answers with (``Post`` and ``Author`` as serialised here), so a hit is never validated
again.

Staleness, and what ends it:
- A post's body never changes; a deleted post stops showing because every page is checked
  against the projections (``known_post.deleted``) before it is hydrated, and the worker drops
  its copy when ``post.deleted`` arrives.
- An author's display name can change: the worker drops the copy on ``user.updated``, and the
  TTL bounds the rare case of a read that fetched the old name storing it after that drop.

Redis failing is a miss (reads) or a skip (writes), never an error: the upstreams still answer.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import cast

from prometheus_client import Counter
from redis.asyncio import Redis
from redis.exceptions import RedisError

from terrascale.common.logging import get_logger
from terrascale.common.metrics import cache_lookup_counters

logger = get_logger(__name__)
POST_LOOKUPS = cache_lookup_counters("hydration_post")
AUTHOR_LOOKUPS = cache_lookup_counters("hydration_author")


class HydrationCache:
    def __init__(
        self, redis: Redis, *, key_prefix: str, post_seconds: int, author_seconds: int
    ) -> None:
        self.redis = redis
        self.key_prefix = key_prefix
        self.post_seconds = post_seconds
        self.author_seconds = author_seconds

    def post_key(self, post_id: int) -> str:
        return f"{self.key_prefix}post:{post_id}"

    def author_key(self, author_id: int) -> str:
        return f"{self.key_prefix}author:{author_id}"

    async def get(
        self, post_ids: Sequence[int], author_ids: Sequence[int]
    ) -> tuple[dict[int, bytes], dict[int, bytes]]:
        """The cached posts and authors, by id, in one round trip; misses are absent."""
        keys = [*map(self.post_key, post_ids), *map(self.author_key, author_ids)]
        if not keys:
            return {}, {}
        try:
            # The client is built without decode_responses: values arrive as bytes.
            values = cast(list[bytes | None], await self.redis.mget(keys))
        except RedisError as exc:
            logger.warning("hydration cache unavailable", error=repr(exc))
            POST_LOOKUPS["error"].inc(len(post_ids))
            AUTHOR_LOOKUPS["error"].inc(len(author_ids))
            return {}, {}
        posts = _found(post_ids, values[: len(post_ids)], POST_LOOKUPS)
        authors = _found(author_ids, values[len(post_ids) :], AUTHOR_LOOKUPS)
        return posts, authors

    async def store(self, posts: Mapping[int, bytes], authors: Mapping[int, bytes]) -> None:
        if not posts and not authors:
            return
        try:
            async with self.redis.pipeline(transaction=False) as pipe:
                for post_id, value in posts.items():
                    pipe.set(self.post_key(post_id), value, ex=self.post_seconds)
                for author_id, value in authors.items():
                    pipe.set(self.author_key(author_id), value, ex=self.author_seconds)
                await pipe.execute()
        except RedisError as exc:
            logger.warning("hydration cache unavailable", error=repr(exc))

    async def forget_post(self, post_id: int) -> None:
        await self.redis.delete(self.post_key(post_id))

    async def forget_author(self, author_id: int) -> None:
        await self.redis.delete(self.author_key(author_id))


def _found(
    ids: Sequence[int], values: Sequence[bytes | None], lookups: Mapping[str, Counter]
) -> dict[int, bytes]:
    found = {id_: value for id_, value in zip(ids, values, strict=True) if value is not None}
    lookups["hit"].inc(len(found))
    lookups["miss"].inc(len(ids) - len(found))
    return found
