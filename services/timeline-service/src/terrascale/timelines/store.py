"""Home timelines in Redis: one sorted set per user whose members and scores are post ids.

Besides posts (scores above 0) a timeline holds marker members scored 0: ``building`` from the
moment a rebuild starts, so fan-out writes land in it while the rebuild reads the database, and
``ready`` once it holds everything the projections imply. A timeline without ``ready`` is rebuilt
before it is read. The key's TTL is the activity window: each read renews it and nothing else
does, so the timeline of someone who stopped reading expires, and fan-out (which only writes to
timelines that exist) skips them from then on.

Ids have 63 bits and scores are doubles (53): neighbouring ids can share a score. Ranges are
therefore read with inclusive bounds and a margin of one score's width, then cut exactly on the
integer ids (``Window.select``). Members are the exact decimal ids.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from redis.asyncio import Redis

from terrascale.timelines.window import Window

BUILDING = "building"
READY = "ready"

# Adds posts to each of KEYS that exists (a missing timeline is rebuilt on read, so writing
# would only create a partial one), optionally marks it complete, and trims it to the newest
# ARGV[1] posts. The markers (score 0) rank lowest, so the oldest posts start at rank `markers`.
# One call writes a whole fan-out batch: a call per timeline cost the worker more CPU packing
# commands than Redis spent running them. (With Redis Cluster the keys of one call would have
# to share a hash slot.)
_ADD_POSTS = """
local written = 0
for k = 1, #KEYS do
  local key = KEYS[k]
  if redis.call('EXISTS', key) == 1 then
    for i = 3, #ARGV do
      redis.call('ZADD', key, ARGV[i], ARGV[i])
    end
    if ARGV[2] == 'ready' then redis.call('ZADD', key, 0, 'ready') end
    local markers = redis.call('ZCOUNT', key, 0, 0)
    local excess = redis.call('ZCARD', key) - markers - tonumber(ARGV[1])
    if excess > 0 then
      redis.call('ZREMRANGEBYRANK', key, markers, markers + excess - 1)
    end
    written = written + 1
  end
end
return written
"""


def _score_margin(post_id: int) -> int:
    """How many ids around ``post_id`` can share its score."""
    return int(math.ulp(float(post_id)))


class TimelineStore:
    def __init__(
        self, redis: Redis, *, key_prefix: str, max_posts: int, active_seconds: int
    ) -> None:
        self.redis = redis
        self.key_prefix = key_prefix
        self.max_posts = max_posts
        self.active_seconds = active_seconds
        self._add_posts = redis.register_script(_ADD_POSTS)

    def key(self, user_id: int) -> str:
        return f"{self.key_prefix}home:{user_id}"

    async def add(self, user_ids: Sequence[int], post_ids: Sequence[int]) -> int:
        """Add the posts to each of these users' timelines that exists, in one script call;
        returns how many timelines were written."""
        if not user_ids or not post_ids:
            return 0
        keys = [self.key(user_id) for user_id in user_ids]
        return int(await self._add_posts(keys=keys, args=[self.max_posts, "", *post_ids]))

    async def remove(self, user_ids: Sequence[int], post_ids: Sequence[int]) -> None:
        """Remove the posts from these users' timelines, in one round trip (ZREM creates
        nothing, so a missing timeline stays missing)."""
        if not user_ids or not post_ids:
            return
        async with self.redis.pipeline(transaction=False) as pipe:
            for user_id in user_ids:
                pipe.zrem(self.key(user_id), *post_ids)
            await pipe.execute()

    async def exists(self, user_id: int) -> bool:
        return bool(await self.redis.exists(self.key(user_id)))

    async def begin_rebuild(self, user_id: int) -> None:
        """Make the timeline exist (not ready) so fan-out writes reach it from now on; the
        caller reads the database only after this returns."""
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.zadd(self.key(user_id), {BUILDING: 0})
            pipe.expire(self.key(user_id), self.active_seconds)
            await pipe.execute()

    async def finish_rebuild(self, user_id: int, post_ids: Sequence[int]) -> bool:
        """Add what the database had and mark the timeline ready; False if it vanished in
        between (Redis flushed), so the caller starts over."""
        written = await self._add_posts(
            keys=[self.key(user_id)], args=[self.max_posts, READY, *post_ids]
        )
        return bool(written)

    async def read(self, user_id: int, window: Window) -> list[int] | None:
        """The window's post ids, or None when the timeline is not ready (missing, expired,
        flushed or half-built). Renews the activity TTL in the same round trip."""
        key = self.key(user_id)
        # Fetch enough that ids sharing a boundary's score cannot push wanted ones out.
        bound = window.newer_than if window.from_oldest else window.older_than
        count = window.limit + (_score_margin(bound) if bound is not None else 0)
        low = "(0" if window.newer_than is None else str(window.newer_than)
        high = "+inf" if window.older_than is None else str(window.older_than)
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.zscore(key, READY)
            if window.from_oldest:
                pipe.zrangebyscore(key, low, high, start=0, num=count)
            else:
                pipe.zrevrangebyscore(key, high, low, start=0, num=count)
            pipe.expire(key, self.active_seconds)
            ready, members, _ = await pipe.execute()
        if ready is None:
            return None
        return window.select(int(member) for member in members if member.isdigit())

    async def drop(self, user_id: int) -> None:
        await self.redis.delete(self.key(user_id))
