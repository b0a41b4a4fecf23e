"""Two regions end to end: a post written in one reaches a follower's home timeline in the
other through the replicators; writes for a user homed elsewhere are refused; and a region
that goes down, Redis and all, catches up when it returns, with nothing lost."""

from __future__ import annotations

import asyncio

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from terrascale.common.regions import MISDIRECTED_REQUEST, RegionMap
from terrascale.common.sharding import default_owner, logical_shard
from terrascale.common.testing.helpers import PROBLEM_JSON
from terrascale.regions.local import (
    DEMO_REGIONS,
    POST_SHARD_DATABASE,
    LocalRegion,
    TwoRegions,
    wait_for,
)

REPLICATION_SECONDS = 30
SHARDS = RegionMap.parse(DEMO_REGIONS, "eu")


async def sign_up(region: LocalRegion, username: str) -> int:
    response = await region.clients["users"].post("/users/", json={"username": username})
    assert response.status_code == httpx.codes.CREATED, response.text
    user_id = int(response.json()["id"])
    assert SHARDS.home_of(user_id) == region.name  # placed on its region's shards
    return user_id


async def replicated_user(region: LocalRegion, user_id: int) -> None:
    async def known() -> bool:
        response = await region.clients["users"].get(f"/users/{user_id}")
        return response.is_success

    await wait_for(known, seconds=REPLICATION_SECONDS, what=f"user {user_id} in {region.name}")


async def home_timeline(regions: TwoRegions, region: LocalRegion, user_id: int) -> list[str]:
    response = await region.clients["timelines"].get(
        "/timelines/home", params={"limit": 40}, headers=regions.auth(user_id)
    )
    assert response.is_success, response.text
    return [post["id"] for post in response.json()]


async def post(regions: TwoRegions, region: LocalRegion, author_id: int, text: str) -> str:
    response = await region.clients["posts"].post(
        "/posts", json={"text": text}, headers=regions.auth(author_id)
    )
    assert response.status_code == httpx.codes.CREATED, response.text
    return response.json()["id"]


async def databases_holding(region: LocalRegion, post_id: int) -> list[str]:
    found = []
    for name in ("posts", POST_SHARD_DATABASE):
        engine = create_async_engine(region.databases[name], poolclass=NullPool)
        try:
            async with engine.connect() as connection:
                statement = text("SELECT 1 FROM post WHERE id = :id")
                if await connection.scalar(statement, {"id": post_id}):
                    found.append(name)
        finally:
            await engine.dispose()
    return found


async def follow(regions: TwoRegions, region: LocalRegion, follower: int, followee: int) -> None:
    response = await region.clients["graph"].put(
        f"/users/{follower}/following/{followee}", headers=regions.auth(follower)
    )
    assert response.is_success, response.text


async def test_a_post_in_one_region_reaches_a_follower_in_the_other(
    regions: TwoRegions,
) -> None:
    eu, us = regions.eu, regions.us
    ada = await sign_up(eu, "ada_eu")
    bob = await sign_up(us, "bob_us")
    await replicated_user(us, ada)

    await follow(regions, us, bob, ada)  # written where bob lives
    text = "hello @bob_us from the other side #regions"
    post_id = await post(regions, eu, ada, text)

    async def in_bobs_timeline() -> bool:
        return post_id in await home_timeline(regions, us, bob)

    await wait_for(in_bobs_timeline, seconds=REPLICATION_SECONDS, what="ada's post in us")
    page = (await us.clients["timelines"].get("/timelines/home", headers=regions.auth(bob))).json()
    assert page[0]["text"] == text
    assert page[0]["author"]["username"] == "ada_eu"  # hydrated from us's replica of ada
    assert page[0]["mentions"] == [{"user_id": str(bob), "username": "bob_us"}]
    # The replica lives where a post of ada's would: on the database that owns her shard.
    expected = ("posts", POST_SHARD_DATABASE)[default_owner(logical_shard(ada), 2)]
    assert await databases_holding(us, int(post_id)) == [expected]

    # The follow reached ada's region too: her followers count it, and she is notified there.
    async def counted() -> bool:
        counts = (await eu.clients["graph"].get(f"/users/{ada}/counts")).json()
        return counts["followers"] == 1

    await wait_for(counted, seconds=REPLICATION_SECONDS, what="bob's follow in eu")

    async def notified(region: LocalRegion, user_id: int, kind: str) -> bool:
        response = await region.clients["notifications"].get(
            "/notifications", headers=regions.auth(user_id)
        )
        return any(item["kind"] == kind for item in response.json())

    await wait_for(lambda: notified(eu, ada, "follow"), seconds=REPLICATION_SECONDS, what="eu")
    await wait_for(lambda: notified(us, bob, "mention"), seconds=REPLICATION_SECONDS, what="us")
    # Each user is notified in their home region only.
    assert not await notified(us, ada, "follow")
    assert not await notified(eu, bob, "mention")

    # A delete reaches the other region's timeline and its post cache, which bob's reads above
    # filled: no cached copy outlives it there.
    assert (await us.clients["posts"].get(f"/posts/{post_id}")).status_code == httpx.codes.OK
    deleted = await eu.clients["posts"].delete(f"/posts/{post_id}", headers=regions.auth(ada))
    assert deleted.status_code == httpx.codes.NO_CONTENT, deleted.text

    async def gone_in_us() -> bool:
        response = await us.clients["posts"].get(f"/posts/{post_id}")
        return response.status_code == 404

    async def out_of_bobs_timeline() -> bool:
        return post_id not in await home_timeline(regions, us, bob)

    await wait_for(gone_in_us, seconds=REPLICATION_SECONDS, what="ada's delete in us")
    await wait_for(out_of_bobs_timeline, seconds=REPLICATION_SECONDS, what="the delete in us")


async def test_writes_for_a_user_homed_elsewhere_are_refused_and_reads_are_served(
    regions: TwoRegions,
) -> None:
    eu, us = regions.eu, regions.us
    ada = await sign_up(eu, "ada_home")
    await replicated_user(us, ada)

    refused = await us.clients["posts"].post(
        "/posts", json={"text": "not here"}, headers=regions.auth(ada)
    )
    assert refused.status_code == MISDIRECTED_REQUEST
    assert refused.headers["content-type"] == PROBLEM_JSON
    assert refused.headers["x-home-region"] == "eu"
    problem = refused.json()
    assert problem["type"] == "urn:terrascale:problem:wrong-region"
    assert problem["home_region"] == "eu"
    profile = await us.clients["users"].patch(
        "/users/me", json={"bio": "forked"}, headers=regions.auth(ada)
    )
    assert profile.status_code == MISDIRECTED_REQUEST

    read = await us.clients["users"].get(f"/users/{ada}")
    assert read.status_code == httpx.codes.OK
    assert read.json()["username"] == "ada_home"


async def test_a_region_that_goes_down_catches_up_with_nothing_lost(
    regions: TwoRegions, eu_valkey: object
) -> None:
    from terrascale.common.embedded import EmbeddedValkey

    assert isinstance(eu_valkey, EmbeddedValkey)
    eu, us = regions.eu, regions.us
    ada = await sign_up(eu, "ada_down")
    bob = await sign_up(us, "bob_up")
    carol = await sign_up(us, "carol_up")
    await replicated_user(eu, bob)
    await follow(regions, eu, ada, bob)  # ada (eu) reads bob's posts
    await follow(regions, us, carol, bob)  # carol (us) too
    await home_timeline(regions, eu, ada)  # ada is active: her timeline is kept in Redis

    # eu goes down entirely: its services and workers, then its Redis.
    await eu.stop()
    eu_valkey.kill()

    # us keeps serving its own users' writes and reads.
    written = [await post(regions, us, bob, f"during the outage {n}") for n in range(10)]

    async def carol_sees_all() -> bool:
        return set(written) <= set(await home_timeline(regions, us, carol))

    await wait_for(carol_sees_all, seconds=REPLICATION_SECONDS, what="bob's posts in us")
    await asyncio.sleep(1)  # the us -> eu replicator is holding events for eu meanwhile

    # eu returns; its replicator position and its streams were kept.
    eu_valkey.start()
    await eu.start()

    async def ada_sees_all() -> bool:
        return set(written) <= set(await home_timeline(regions, eu, ada))

    await wait_for(ada_sees_all, seconds=60, what="bob's outage posts in eu")
    replicas = await eu.clients["posts"].get("/posts", params={"ids": ",".join(written)})
    assert sorted(item["id"] for item in replicas.json()) == sorted(written)


async def test_a_remote_users_home_timeline_is_read_from_the_replicas(
    regions: TwoRegions,
) -> None:
    eu, us = regions.eu, regions.us
    ada = await sign_up(eu, "ada_reader")
    bob = await sign_up(us, "bob_writer")
    await replicated_user(eu, bob)
    await follow(regions, eu, ada, bob)
    first = await post(regions, us, bob, "first")

    async def in_eu(post_id: str) -> bool:
        return post_id in await home_timeline(regions, eu, ada)

    await wait_for(lambda: in_eu(first), seconds=REPLICATION_SECONDS, what="first in eu")
    # Read in us, where ada is not homed: built from us's projections, and kept current.
    assert first in await home_timeline(regions, us, ada)
    second = await post(regions, us, bob, "second")
    await wait_for(lambda: in_eu(second), seconds=REPLICATION_SECONDS, what="second in eu")

    async def in_us() -> bool:
        return second in await home_timeline(regions, us, ada)

    await wait_for(in_us, seconds=REPLICATION_SECONDS, what="second in ada's timeline in us")
