"""Posts in Redis, cache-aside, as versioned entries.

An entry holds a post at a version, or a tombstone (``post: null``) once the post is deleted; a
write never replaces a newer version with an older one, so a reader that loaded a post just
before its deletion cannot put it back. ``terrascale.common.cache.Cache`` stores one versioned
entry per call; a batch read refills up to 100, so ``store_many`` sends them in one pipeline.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from pydantic import ValidationError

from terrascale.common.cache import Cache
from terrascale.posts.schemas import CachedPost

# The same rule as Cache.set_if_newer's script: keep the entry if it holds a newer version.
SET_IF_NEWER = """
local current = redis.call('GET', KEYS[1])
if current then
  local ok, decoded = pcall(cjson.decode, current)
  if ok and type(decoded) == 'table' and tonumber(decoded['version'])
     and tonumber(decoded['version']) > tonumber(ARGV[2]) then
    return 0
  end
end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[3])
return 1
"""


class PostCache:
    def __init__(self, cache: Cache) -> None:
        self.cache = cache
        self._set_if_newer = cache.redis.register_script(SET_IF_NEWER)

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
        """One round trip for the whole batch (a pipeline, so it also works on Redis Cluster,
        where one script may only touch keys of one slot)."""
        if not entries:
            return

        async def store() -> None:
            async with self.cache.redis.pipeline(transaction=False) as pipe:
                for post_id, entry in entries.items():
                    await self._set_if_newer(
                        keys=[self.key(post_id)],
                        args=[entry.model_dump_json(), entry.version, self.cache.ttl_seconds],
                        client=pipe,
                    )
                await pipe.execute()

        # Through the cache's circuit breaker: Redis down means skip, never fail the request.
        await self.cache._run(store, None)

    async def delete(self, post_id: int) -> None:
        await self.cache.delete(self.key(post_id))


def _parse(value: bytes) -> CachedPost | None:
    try:
        return CachedPost.model_validate_json(value)
    except ValidationError:
        return None  # an unreadable entry (older format?) is a miss; the refill replaces it
