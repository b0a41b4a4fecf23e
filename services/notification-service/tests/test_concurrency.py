"""Seqs stay gapless and unread counts exact when many inserts for one recipient race each
other and the read mark."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable

from terrascale.common.testing.helpers import serve_app
from terrascale.notifications.app import create_app
from terrascale.notifications.rules import Kind

from .conftest import Auth, MakeSettings, Sql, Store


async def test_concurrent_inserts_and_reads_keep_the_count_exact(
    make_settings: MakeSettings,
    store: Store,
    new_id: Callable[[], int],
    auth: Auth,
    sql: Sql,
) -> None:
    me = new_id()
    actors = [new_id() for _ in range(60)]
    rng = random.Random(11)
    app = create_app(make_settings(db_pool_size=10, db_max_overflow=5))
    read_marks: list[int] = []
    # The worker's side opens a connection per insert: bounded, like a worker's pool.
    connections = asyncio.Semaphore(20)

    async def store_once(actor: int) -> None:
        async with connections:
            await store(me, kind=Kind.FOLLOW, actor_id=actor)

    async with serve_app(app) as client:

        async def insert(actor: int) -> None:
            # Each fact twice, racing itself: one of the two stores it.
            await asyncio.gather(store_once(actor), store_once(actor))

        async def read(up_to: int | None) -> None:
            body = {} if up_to is None else {"up_to_id": up_to}
            response = await client.post("/notifications/read", json=body, headers=auth(me))
            assert response.status_code == 200, response.text
            read_marks.append(response.json()["count"])

        reads = [read(rng.choice([None, rng.randrange(1, 70)])) for _ in range(40)]
        work = [insert(actor) for actor in actors] + reads
        rng.shuffle(work)
        await asyncio.gather(*work)

        count = (await client.get("/notifications/unread_count", headers=auth(me))).json()
        listed = (await client.get("/notifications?limit=40", headers=auth(me))).json()
        older = (
            await client.get(f"/notifications?limit=40&max_id={listed[-1]['id']}", headers=auth(me))
        ).json()

    rows = await sql("SELECT seq FROM notification WHERE recipient_id = :r ORDER BY seq", r=me)
    assert [row.seq for row in rows] == list(range(1, len(actors) + 1))  # one each, no gap
    [(last_seq, last_read)] = await sql(
        "SELECT last_seq, last_read_seq FROM notification_state WHERE recipient_id = :r", r=me
    )
    assert last_seq == len(actors)
    unread_rows = sum(1 for item in listed + older if not item["read"])
    assert count == {"count": last_seq - last_read} == {"count": unread_rows}
    assert all(0 <= mark <= len(actors) for mark in read_marks)
