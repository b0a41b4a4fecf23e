"""Rate limits kept in Redis: writes per signed-in user, sign-ins per client IP.

A limit of N per minute is a bucket of N requests that refills at N per minute, enforced with
GCRA (the generic cell rate algorithm) in one Lua script: one key per client holding one
timestamp, one round trip, atomic across every process. A sliding-window log would store every
request; a fixed window lets a client spend twice its limit around a window boundary. GCRA also
gives the exact wait, which becomes ``Retry-After``.

When Redis is unreachable the limiter lets everything through (fail open): an outage of the
cache must not become an outage of the API. Like ``Cache``, it logs one warning, then skips
Redis for ``CACHE_RETRY_AFTER_SECONDS`` before trying again.
"""

from __future__ import annotations

import ipaddress
import math
import time
from collections.abc import Sequence
from ipaddress import IPv4Network, IPv6Network

from fastapi import Depends, Request
from redis.asyncio import Redis
from redis.exceptions import RedisError

from terrascale.common.auth import CurrentUserId
from terrascale.common.errors import TooManyRequestsError
from terrascale.common.logging import get_logger
from terrascale.common.settings import ServiceSettings

logger = get_logger(__name__)

# KEYS[1]: the client's key. ARGV: interval (µs per request), capacity (requests).
# Stores the theoretical arrival time (TAT) of the next request; answers 0 to admit, or the
# microseconds to wait. Redis's own clock: every process agrees on "now".
_GCRA = """
local now = redis.call('TIME')
now = tonumber(now[1]) * 1000000 + tonumber(now[2])
local interval = tonumber(ARGV[1])
local capacity = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1])) or now
if tat < now then tat = now end
local new_tat = tat + interval
local wait = new_tat - now - interval * capacity
if wait > 0 then return wait end
-- %.0f: Lua 5.1 would print a 16-digit number as 1.7e+15, losing the microseconds.
redis.call('SET', KEYS[1], string.format('%.0f', new_tat), 'PX', math.ceil((new_tat - now) / 1000))
return 0
"""

MICROSECONDS_PER_MINUTE = 60_000_000


class RateLimitedError(TooManyRequestsError):
    title = "Too many requests"
    slug = "rate-limited"


class RateLimiter:
    def __init__(self, redis: Redis, *, key_prefix: str, retry_after_seconds: float) -> None:
        self.key_prefix = key_prefix
        self.retry_after_seconds = retry_after_seconds
        self._gcra = redis.register_script(_GCRA)
        self._down_until: float | None = None

    @classmethod
    def from_settings(cls, redis: Redis, settings: ServiceSettings) -> RateLimiter:
        return cls(
            redis,
            key_prefix=settings.cache_key_prefix,
            retry_after_seconds=settings.cache_retry_after_seconds,
        )

    async def hit(self, limit: str, client: object, *, per_minute: int) -> None:
        """Count one request of ``client`` against ``limit``; RateLimitedError past it.
        ``per_minute`` 0 means no limit."""
        if per_minute <= 0:
            return
        key = f"{self.key_prefix}ratelimit:{limit}:{client}"
        interval = MICROSECONDS_PER_MINUTE // per_minute
        wait_microseconds = await self._evaluate(key, interval, per_minute)
        if wait_microseconds:
            raise RateLimitedError(
                f"Too many requests; at most {per_minute} per minute.",
                retry_after_seconds=math.ceil(wait_microseconds / 1_000_000),
            )

    async def _evaluate(self, key: str, interval: int, capacity: int) -> int:
        if self._down_until is not None and time.monotonic() < self._down_until:
            return 0
        try:
            wait = int(await self._gcra(keys=[key], args=[interval, capacity]))
        except RedisError as exc:
            if self._down_until is None:
                logger.warning(
                    "rate limits not enforced: Redis unavailable",
                    error=repr(exc),
                    retry_after_seconds=self.retry_after_seconds,
                )
            self._down_until = time.monotonic() + self.retry_after_seconds
            return 0
        if self._down_until is not None:
            self._down_until = None
            logger.info("rate limits enforced again")
        return wait


Network = IPv4Network | IPv6Network


def client_ip(request: Request, trusted_proxies: Sequence[Network]) -> str:
    """The address a request came from: the peer's, or, when the peer is a trusted proxy, the
    right-most X-Forwarded-For hop that is not one. Hops to its left are whatever the client
    wrote and are never believed. An IPv6 client is counted by its /64, the block one host
    usually holds, so cycling through its addresses gains nothing."""
    peer = request.client.host if request.client else ""
    address = _parse(peer)
    if address is not None and _is_trusted(address, trusted_proxies):
        forwarded = ",".join(request.headers.getlist("x-forwarded-for"))
        for hop in reversed([part.strip() for part in forwarded.split(",") if part.strip()]):
            hop_address = _parse(hop)
            if hop_address is None:
                break  # malformed: the chain cannot be followed further
            address = hop_address
            if not _is_trusted(hop_address, trusted_proxies):
                break
    if address is None:
        return peer or "unknown"
    if address.version == 6:  # noqa: PLR2004
        return str(ipaddress.ip_network(f"{address}/64", strict=False))
    return str(address)


def _parse(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _is_trusted(
    address: ipaddress.IPv4Address | ipaddress.IPv6Address, trusted: Sequence[Network]
) -> bool:
    return any(address in network for network in trusted)


async def _limit_writes(request: Request, user_id: CurrentUserId) -> None:
    settings: ServiceSettings = request.app.state.settings
    limiter: RateLimiter = request.app.state.rate_limiter
    await limiter.hit("writes", user_id, per_minute=settings.rate_limit_writes_per_minute)


async def _limit_signins(request: Request) -> None:
    settings: ServiceSettings = request.app.state.settings
    limiter: RateLimiter = request.app.state.rate_limiter
    ip = client_ip(request, settings.trusted_proxies)
    await limiter.hit("signin", ip, per_minute=settings.rate_limit_signin_per_minute)


# For a route's ``dependencies``; the route must also document 429 (problem_responses).
LimitWrites = Depends(_limit_writes)
"""Writes per signed-in user (RATE_LIMIT_WRITES_PER_MINUTE); needs a valid token first."""
LimitSignIns = Depends(_limit_signins)
"""Sign-ups, sign-ins and refreshes per client IP (RATE_LIMIT_SIGNIN_PER_MINUTE)."""
