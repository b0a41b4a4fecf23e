"""The running system as end-to-end tests see it (built by the ``system`` fixture in
conftest.py): an HTTP client per service, and what tests need to act as users."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import httpx
import jwt
import pytest
from redis.asyncio import Redis
from sqlalchemy import text
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from terrascale.common.auth import ACCESS_TOKEN_TYPE, ALGORITHM
from terrascale.common.keys import load_private_key
from terrascale.timelines.config import TimelineSettings
from terrascale.users.config import UserSettings


@dataclass
class System:
    """HTTP clients of the five services, all sharing one event backbone."""

    users: httpx.AsyncClient
    graph: httpx.AsyncClient
    posts: httpx.AsyncClient
    timelines: httpx.AsyncClient
    notifications: httpx.AsyncClient
    user_settings: UserSettings
    timeline_settings: TimelineSettings
    redis: Redis
    event_key_prefix: str
    databases: dict[str, URL]
    private_key_pem: str

    async def quiesce(self, seconds: float = 600) -> None:
        """Wait until every event made so far has been handled: each outbox is published and
        each consumer group of each stream has nothing unread and nothing pending."""
        deadline = asyncio.get_running_loop().time() + seconds
        while not await self._quiet():
            if asyncio.get_running_loop().time() > deadline:
                pytest.fail(f"events still in flight after {seconds}s")
            await asyncio.sleep(0.5)

    async def _quiet(self) -> bool:
        for url in self.databases.values():
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
        pattern = f"{self.event_key_prefix}events:*"
        async for key in self.redis.scan_iter(match=pattern, count=1000, _type="stream"):
            for group in await self.redis.xinfo_groups(key):
                if group["pending"] or group["lag"]:
                    return False
        return True

    async def wait_until_posts_know(self, user_id: int | str, seconds: float = 15) -> None:
        """Mentions resolve against the Post Service's copy of the users, which user.created
        events fill: wait until it knows the user, as a client would see it a moment later."""
        engine = create_async_engine(self.databases["posts"], poolclass=NullPool)
        try:
            for _ in range(int(seconds * 10)):
                async with engine.connect() as connection:
                    statement = text("SELECT 1 FROM known_user WHERE id = :id")
                    if await connection.scalar(statement, {"id": int(user_id)}):
                        return
                await asyncio.sleep(0.1)
        finally:
            await engine.dispose()
        pytest.fail(f"the post service never learnt of user {user_id}")

    def auth(self, user_id: int | str) -> dict[str, str]:
        """An access token as the User Service issues it: this system's key signs both."""
        now = datetime.now(UTC)
        claims = {
            "sub": str(user_id),
            "iss": "terrascale",
            "aud": "terrascale",
            "iat": now,
            "exp": now + timedelta(hours=1),
            "jti": uuid.uuid4().hex,
        }
        key = load_private_key(self.private_key_pem)
        token = jwt.encode(claims, key, algorithm=ALGORITHM, headers={"typ": ACCESS_TOKEN_TYPE})
        return {"Authorization": f"Bearer {token}"}
