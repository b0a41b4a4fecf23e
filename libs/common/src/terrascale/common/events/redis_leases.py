"""Renewable per-partition leases in Redis, and each consumer's fair share of them.

A consumer reads a partition only while it holds that partition's lease, so one partition is
processed by one consumer of a group at a time (its order is kept) while a group of several
consumers still splits the partitions between them. Members heartbeat into a sorted set; each
takes at most ``ceil(partitions / live members)`` leases and gives back any above that, so a new
member gets work within a few renewal periods and a dead member's leases expire after one TTL.

Membership uses wall-clock scores, so hosts' clocks must agree to well within the TTL.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence

from redis.asyncio import Redis

# Compare-and-set: a consumer only extends or deletes a lease it still holds, and takes one that
# is free or already its own (after an outage it may still hold it).
_ACQUIRE = """
local owner = redis.call('GET', KEYS[1])
if owner == false then
    return redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) and 1 or 0
end
if owner == ARGV[1] then
    return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""
_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
    return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
    return redis.call('DEL', KEYS[1])
end
return 0
"""


class PartitionLeases:
    def __init__(self, redis: Redis, *, members_key: str, owner: str, ttl_seconds: float) -> None:
        self.redis = redis
        self.members_key = members_key
        self.owner = owner
        self.ttl_ms = max(1, round(ttl_seconds * 1000))
        self._acquire = redis.register_script(_ACQUIRE)
        self._renew = redis.register_script(_RENEW)
        self._release = redis.register_script(_RELEASE)

    async def heartbeat(self) -> int:
        """Record this member as alive, forget members silent for a TTL; returns live members."""
        now_ms = time.time() * 1000
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.zadd(self.members_key, {self.owner: now_ms})
            pipe.zremrangebyscore(self.members_key, "-inf", now_ms - self.ttl_ms)
            pipe.pexpire(self.members_key, self.ttl_ms * 10)
            pipe.zcard(self.members_key)
            results = await pipe.execute()
        return max(1, int(results[-1]))

    def fair_share(self, partitions: int, live_members: int) -> int:
        return math.ceil(partitions / max(1, live_members))

    async def try_acquire(self, lease_key: str) -> bool:
        return bool(await self._acquire(keys=[lease_key], args=[self.owner, self.ttl_ms]))

    async def renew(self, lease_keys: Sequence[str]) -> set[str]:
        """Extend each lease still held; returns those. A lease missing here was lost."""
        if not lease_keys:
            return set()
        async with self.redis.pipeline(transaction=False) as pipe:
            for key in lease_keys:
                await self._renew(keys=[key], args=[self.owner, self.ttl_ms], client=pipe)
            results = await pipe.execute()
        return {key for key, renewed in zip(lease_keys, results, strict=True) if renewed}

    async def release(self, lease_key: str) -> None:
        await self._release(keys=[lease_key], args=[self.owner])

    async def leave(self) -> None:
        await self.redis.zrem(self.members_key, self.owner)
