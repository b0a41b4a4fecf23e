"""Counters stay exact when many follows and unfollows of one user race each other, and mutual
follows racing in opposite directions do not deadlock."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from typing import Any

from terrascale.common.testing.helpers import serve_app
from terrascale.graph.app import create_app

KnownUser = Callable[[], Awaitable[int]]
Auth = Callable[[int], dict[str, str]]
Sql = Callable[..., Awaitable[list[Any]]]


async def stored_counts(sql: Sql, user_id: int) -> dict[str, int]:
    """Counters next to the truth: COUNT(*) of the edges in each direction's table."""
    [row] = await sql(
        "SELECT "
        " (SELECT count(*) FROM follower_edge WHERE followee_id = :u) AS follower_rows,"
        " (SELECT count(*) FROM following_edge WHERE followee_id = :u) AS follower_rows_mirror,"
        " (SELECT count(*) FROM following_edge WHERE follower_id = :u) AS following_rows,"
        " (SELECT count(*) FROM follower_edge WHERE follower_id = :u) AS following_rows_mirror,"
        " coalesce((SELECT followers FROM follow_count WHERE user_id = :u), 0) AS followers,"
        " coalesce((SELECT following FROM follow_count WHERE user_id = :u), 0) AS following",
        u=user_id,
    )
    return dict(row._mapping)


async def test_counts_are_exact_under_concurrent_follows_and_unfollows(
    make_settings: Callable[..., Any],
    event_settings: Any,
    known_user: KnownUser,
    auth: Auth,
    sql: Sql,
) -> None:
    star = await known_user()
    fans = [await known_user() for _ in range(40)]
    app = create_app(make_settings(db_pool_size=20, db_max_overflow=10), event_settings)
    rng = random.Random(7)

    async with serve_app(app) as client:

        async def churn(fan: int) -> None:
            # Each fan follows, repeats itself and unfollows in a random order, several times,
            # while every other fan does the same: the counters see every real change once.
            steps = ["PUT", "PUT", "DELETE", "PUT", "DELETE", "DELETE", "PUT"]
            rng.shuffle(steps)
            for method in steps:
                response = await client.request(
                    method, f"/users/{fan}/following/{star}", headers=auth(fan)
                )
                assert response.status_code == 200, response.text

        async def duplicate(fan: int) -> None:
            await asyncio.gather(
                *(client.put(f"/users/{fan}/following/{star}", headers=auth(fan)) for _ in range(3))
            )

        await asyncio.gather(*(churn(fan) for fan in fans), *(duplicate(f) for f in fans[:10]))

        counts = (await client.get(f"/users/{star}/counts")).json()

    truth = await stored_counts(sql, star)
    assert truth["follower_rows"] == truth["follower_rows_mirror"]
    assert counts["followers"] == truth["followers"] == truth["follower_rows"]
    assert 0 <= counts["followers"] <= len(fans)
    for fan in fans:
        fan_truth = await stored_counts(sql, fan)
        assert fan_truth["following"] == fan_truth["following_rows"]
        assert fan_truth["following_rows"] == fan_truth["following_rows_mirror"]
    [(created, deleted)] = await sql(
        "SELECT count(*) FILTER (WHERE type = 'follow.created'),"
        " count(*) FILTER (WHERE type = 'follow.deleted')"
        " FROM outbox_event WHERE payload->'data'->>'followee_id' = :s",
        s=str(star),
    )
    # Every emitted event is a real change: created minus deleted is what remains.
    assert created - deleted == counts["followers"]


async def test_mutual_follows_racing_do_not_deadlock(
    make_settings: Callable[..., Any],
    event_settings: Any,
    known_user: KnownUser,
    auth: Auth,
    sql: Sql,
) -> None:
    users = [await known_user() for _ in range(8)]
    pairs = [(a, b) for a in users for b in users if a != b]
    app = create_app(make_settings(db_pool_size=20, db_max_overflow=10), event_settings)
    async with serve_app(app) as client:
        responses = await asyncio.gather(
            *(client.put(f"/users/{a}/following/{b}", headers=auth(a)) for a, b in pairs)
        )
        assert {response.status_code for response in responses} == {200}
        for user in users:
            counts = (await client.get(f"/users/{user}/counts")).json()
            assert (counts["followers"], counts["following"]) == (7, 7)
    for user in users:
        truth = await stored_counts(sql, user)
        assert truth["followers"] == truth["follower_rows"] == 7
        assert truth["following"] == truth["following_rows"] == 7
