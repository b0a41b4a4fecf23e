"""A Redis cache that degrades instead of failing.

When Redis is unreachable, reads report a miss and writes are skipped, so callers fall back to
PostgreSQL. The first failure logs one warning and opens a short circuit (no Redis calls for
``retry_after`` seconds) so an outage costs each request nothing; the first success afterwards
logs the recovery.
"""

from __future__ import annotations

import time
from typing import cast

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from terrascale.common.logging import get_logger
from terrascale.common.settings import ServiceSettings

logger = get_logger(__name__)


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

    @classmethod
    def from_settings(cls, redis: Redis, settings: ServiceSettings) -> Cache:
        return cls(
            redis,
            key_prefix=settings.cache_key_prefix,
            ttl_seconds=settings.cache_ttl_seconds,
            retry_after_seconds=settings.cache_retry_after_seconds,
        )

    @property
    def available(self) -> bool:
        return self._down_until is None

    def key(self, *parts: object) -> str:
        return self.key_prefix + ":".join(str(part) for part in parts)

    async def get(self, key: str) -> bytes | None:
        if self._circuit_open():
            return None
        try:
            # The client is built without decode_responses, so values arrive as bytes.
            value = cast(bytes | None, await self.redis.get(key))
        except RedisError as exc:
            self._record_failure(exc)
            return None
        self._record_success()
        return value

    async def set(self, key: str, value: bytes | str) -> None:
        if self._circuit_open():
            return
        try:
            await self.redis.set(key, value, ex=self.ttl_seconds)
        except RedisError as exc:
            self._record_failure(exc)
        else:
            self._record_success()

    async def delete(self, key: str) -> None:
        if self._circuit_open():
            return
        try:
            await self.redis.delete(key)
        except RedisError as exc:
            self._record_failure(exc)
        else:
            self._record_success()

    def _circuit_open(self) -> bool:
        return self._down_until is not None and time.monotonic() < self._down_until

    def _record_failure(self, exc: RedisError) -> None:
        if self._down_until is None:
            logger.warning(
                "cache unavailable; serving from the database",
                error=repr(exc),
                retry_after_seconds=self.retry_after_seconds,
            )
        self._down_until = time.monotonic() + self.retry_after_seconds

    def _record_success(self) -> None:
        if self._down_until is not None:
            self._down_until = None
            logger.info("cache recovered")
