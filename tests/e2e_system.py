"""The running system as end-to-end tests see it (built by the ``system`` fixture in
conftest.py): an HTTP client per service, and what tests need to act as users."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import httpx
import pytest
from redis.asyncio import Redis
from sqlalchemy import text
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from terrascale.common.auth import AccessTokenIssuer
from terrascale.common.events import events_settled
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
        return await events_settled(
            self.redis, self.databases.values(), event_key_prefix=self.event_key_prefix
        )

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
        issuer = AccessTokenIssuer(
            load_private_key(self.private_key_pem), "terrascale", "terrascale", 3600
        )
        token = issuer.issue(int(user_id))
        return {"Authorization": f"Bearer {token}"}
