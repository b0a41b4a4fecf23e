"""What the system holds, read around the services: the post and notification databases
directly, and the home timelines as their readers see them (``GET /timelines/home``)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import httpx
from sqlalchemy import text
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from terrascale.bench.workload import Population
from terrascale.chaos.oracle import StoredPost

TIMELINE_PAGE = 40  # the Timeline Service's largest page


async def stored_posts(posts_databases: Sequence[URL], run_tag: str) -> dict[str, list[StoredPost]]:
    """Marker -> every stored post whose text starts with it (deleted ones included), from
    every shard database of the Post Service: a post stored twice shows up twice."""
    found: dict[str, list[StoredPost]] = {}
    for database in posts_databases:
        engine = create_async_engine(database, poolclass=NullPool)
        try:
            async with engine.connect() as connection:
                rows = await connection.execute(
                    text("SELECT id, author_id, text FROM post WHERE text LIKE :pattern"),
                    {"pattern": f"chaos{run_tag}n%"},
                )
                for post_id, author_id, body in rows:
                    marker = body.split(" ", 1)[0]
                    found.setdefault(marker, []).append(StoredPost(post_id, author_id))
        finally:
            await engine.dispose()
    return found


async def mention_notifications(
    notifications_database: URL, recipients: Sequence[int]
) -> dict[tuple[int, int], int]:
    """(recipient, post id) -> how many mention notifications are stored."""
    engine = create_async_engine(notifications_database, poolclass=NullPool)
    try:
        async with engine.connect() as connection:
            rows = await connection.execute(
                text(
                    "SELECT recipient_id, subject_id, count(*) FROM notification "
                    "WHERE kind = 'mention' AND recipient_id = ANY(:recipients) "
                    "GROUP BY recipient_id, subject_id"
                ),
                {"recipients": list(recipients)},
            )
            return {(recipient, subject): count for recipient, subject, count in rows}
    finally:
        await engine.dispose()


async def home_timeline(client: httpx.AsyncClient, token: str) -> list[int]:
    """Every post id of one user's home timeline, newest first, following the ``next`` links."""
    ids: list[int] = []
    url: str | None = f"/timelines/home?limit={TIMELINE_PAGE}"
    headers = {"Authorization": f"Bearer {token}"}
    while url is not None:
        answer = await client.get(url, headers=headers)
        answer.raise_for_status()
        ids += [int(post["id"]) for post in answer.json()]
        following = answer.links.get("next")
        url = following["url"] if following else None
    return ids


async def home_timelines(
    timeline_service: str, population: Population, *, concurrency: int = 4
) -> dict[int, list[int]]:
    """User id -> their home timeline's post ids, for every seeded user."""
    gate = asyncio.Semaphore(concurrency)
    async with httpx.AsyncClient(base_url=timeline_service, timeout=30) as client:

        async def one(index: int) -> tuple[int, list[int]]:
            async with gate:
                token = population.tokens[index]
                return population.ids[index], await home_timeline(client, token)

        pages = await asyncio.gather(*(one(index) for index in range(len(population))))
    return dict(pages)
