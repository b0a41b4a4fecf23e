"""Whether a whole system has handled every event it made: for tests and load harnesses that
must wait for the consequences of what they did (Redis Streams transport)."""

from __future__ import annotations

from collections.abc import Iterable

from redis.asyncio import Redis
from sqlalchemy import text
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool


async def events_settled(redis: Redis, databases: Iterable[URL], *, event_key_prefix: str) -> bool:
    """Every outbox in ``databases`` is published, and every consumer group of every stream
    under ``event_key_prefix`` has nothing unread and nothing pending."""
    for url in databases:
        engine = create_async_engine(url, poolclass=NullPool)
        try:
            async with engine.connect() as connection:
                has_outbox = await connection.scalar(
                    text("SELECT to_regclass('outbox_event') IS NOT NULL")
                )
                unpublished = has_outbox and await connection.scalar(
                    text("SELECT count(*) FROM outbox_event WHERE published_at IS NULL")
                )
        finally:
            await engine.dispose()
        if unpublished:
            return False
    pattern = f"{event_key_prefix}events:*"
    async for key in redis.scan_iter(match=pattern, count=1000, _type="stream"):
        for group in await redis.xinfo_groups(key):
            if group["pending"] or group["lag"]:
                return False
    return True
