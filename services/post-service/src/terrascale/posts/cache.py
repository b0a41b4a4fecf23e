"""Posts in Redis, cache-aside, as versioned entries.

An entry holds a post at a version, or a tombstone (``post: null``) once the post is deleted; a
write never replaces a newer version with an older one, so a reader that loaded a post just
before its deletion cannot put it back (``Cache.set_if_newer`` keeps that rule in Redis).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from pydantic import ValidationError

from terrascale.common.cache import Cache
from terrascale.posts.schemas import CachedPost


class PostCache:
    def __init__(self, cache: Cache) -> None:
        self.cache = cache

    def key(self, post_id: int) -> str:
        return self.cache.key("post", post_id)

    async def get_many(self, post_ids: Sequence[int]) -> dict[int, CachedPost]:
        """The entries found, by post id; a miss (or Redis down) is simply absent."""
        raw = await self.cache.get_many([self.key(post_id) for post_id in post_ids])
        found: dict[int, CachedPost] = {}
        for post_id, value in zip(post_ids, raw, strict=True):
            if value is not None and (entry := _parse(value)) is not None:
                found[post_id] = entry
        return found

    async def store_many(self, entries: Mapping[int, CachedPost]) -> None:
        """One round trip for the whole batch; Redis down means skip, never fail the request."""
        await self.cache.set_many_if_newer(
            {
                self.key(post_id): (entry.model_dump_json(), entry.version)
                for post_id, entry in entries.items()
            }
        )

    async def delete(self, post_id: int) -> None:
        await self.cache.delete(self.key(post_id))


def _parse(value: bytes) -> CachedPost | None:
    try:
        return CachedPost.model_validate_json(value)
    except ValidationError:
        return None  # an unreadable entry (older format?) is a miss; the refill replaces it
