"""A Redis cache that degrades instead of failing.

When Redis is unreachable, reads report a miss and writes are skipped, so callers fall back to
PostgreSQL. The first failure logs one warning and opens a short circuit (no Redis calls for
``retry_after`` seconds) so an outage costs each request nothing; the first success afterwards
logs the recovery.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TypeVar, cast

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from terrascale.common.logging import get_logger
from terrascale.common.metrics import CACHE_LOOKUPS
from terrascale.common.settings import ServiceSettings

logger = get_logger(__name__)

T = TypeVar("T")

# Store a JSON value unless the entry already holds a newer "version": a reader that loaded a
# row before an update committed cannot overwrite the value the update wrote.
_SET_IF_NEWER = """
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


def create_redis(settings: ServiceSettings) -> Redis:
    password = settings.redis_password.get_secret_value() if settings.redis_password else None
    return Redis(
        host=settings.redis_host,
        port=settings.redis_port,
        db=settings.redis_db,
        password=password,
        socket_timeout=settings.redis_timeout_seconds,
        socket_connect_timeout=settings.redis_timeout_seconds,
        retry=Retry(NoBackoff(), retries=0),  # fail fast; the circuit decides when to retry
        health_check_interval=30,
        max_connections=64,
    )


class Cache:
    def __init__(
        self, redis: Redis, *, key_prefix: str, ttl_seconds: int, retry_after_seconds: float
    ) -> None:
        self.redis = redis
        self.key_prefix = key_prefix
        self.ttl_seconds = ttl_seconds
        self.retry_after_seconds = retry_after_seconds
        self._down_until: float | None = None
        self._set_if_newer = redis.register_script(_SET_IF_NEWER)

    @classmethod
    def from_settings(cls, redis: Redis, settings: ServiceSettings) -> Cache:
        return cls(
            redis,
            key_prefix=settings.cache_key_prefix,
            ttl_seconds=settings.cache_ttl_seconds,
            retry_after_seconds=settings.cache_retry_after_seconds,
        )

    def key(self, *parts: object) -> str:
        return self.key_prefix + ":".join(str(part) for part in parts)

    async def get(self, key: str) -> bytes | None:
        # The client is built without decode_responses, so values arrive as bytes.
        value = await self._run(lambda: cast(Awaitable[bytes | None], self.redis.get(key)), None)
        self._count_lookups(key, hits=int(value is not None), lookups=1)
        return value

    async def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        misses: list[bytes | None] = [None] * len(keys)
        if not keys:
            return misses
        values = await self._run(
            lambda: cast(Awaitable[list[bytes | None]], self.redis.mget(keys)), misses
        )
        hits = sum(value is not None for value in values)
        self._count_lookups(keys[0], hits=hits, lookups=len(keys))
        return values

    def _count_lookups(self, key: str, *, hits: int, lookups: int) -> None:
        """Counted under the key's first part (``user`` for ``<prefix>user:42``). Called right
        after ``_run`` returns: the circuit's state still tells whether Redis answered."""
        cache = key[len(self.key_prefix) :].partition(":")[0]
        if self._down_until is not None:
            CACHE_LOOKUPS.labels(cache, "error").inc(lookups)
            return
        if hits:
            CACHE_LOOKUPS.labels(cache, "hit").inc(hits)
        if lookups > hits:
            CACHE_LOOKUPS.labels(cache, "miss").inc(lookups - hits)

    async def set(self, key: str, value: bytes | str) -> None:
        await self._run(lambda: self.redis.set(key, value, ex=self.ttl_seconds), None)

    async def set_if_newer(self, key: str, value: bytes | str, *, version: int) -> None:
        """Store a JSON object carrying ``"version"`` unless a newer version is cached."""
        await self._run(
            lambda: self._set_if_newer(keys=[key], args=[value, version, self.ttl_seconds]), None
        )

    async def set_many_if_newer(self, entries: Mapping[str, tuple[bytes | str, int]]) -> None:
        """``set_if_newer`` for many keys (key -> (value, version)) in one round trip: a pipeline,
        so it also works on Redis Cluster, where one script may only touch keys of one slot."""
        if not entries:
            return

        async def store() -> None:
            async with self.redis.pipeline(transaction=False) as pipe:
                for key, (value, version) in entries.items():
                    await self._set_if_newer(
                        keys=[key], args=[value, version, self.ttl_seconds], client=pipe
                    )
                await pipe.execute()

        await self._run(store, None)

    async def delete(self, key: str) -> None:
        await self._run(lambda: self.redis.delete(key), None)

    async def increment(self, key: str, *, ttl_seconds: int) -> int | None:
        """Count an event in a window that starts with the first one; None when Redis is down."""

        async def incr_with_ttl() -> int:
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.incr(key)
                pipe.expire(key, ttl_seconds, nx=True)
                count, _ = await pipe.execute()
            return int(count)

        return await self._run(incr_with_ttl, None)

    async def ttl(self, key: str) -> int | None:
        """Seconds until ``key`` expires; None if it has no expiry, is missing, or Redis is down."""
        seconds = await self._run(lambda: self.redis.ttl(key), -2)
        return seconds if seconds >= 0 else None

    async def _run(self, operation: Callable[[], Awaitable[T]], default: T) -> T:
        if self._down_until is not None and time.monotonic() < self._down_until:
            return default
        try:
            result = await operation()
        except RedisError as exc:
            if self._down_until is None:
                logger.warning(
                    "cache unavailable; serving from the database",
                    error=repr(exc),
                    retry_after_seconds=self.retry_after_seconds,
                )
            self._down_until = time.monotonic() + self.retry_after_seconds
            return default
        if self._down_until is not None:
            self._down_until = None
            logger.info("cache recovered")
        return result
