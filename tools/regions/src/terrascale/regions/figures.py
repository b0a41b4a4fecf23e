"""The two-region figures: replication lag, post-to-remote-timeline delay, outage catch-up.

Both regions and both replicators run in this process (``local.LocalRegion``), against one
PostgreSQL and two Redis servers (``eu`` on an embedded Valkey of its own, so its outage takes
its Redis down too). Every figure is the median (and maximum) over the repeats.

- replication lag: a ``post.created`` stored in eu's stream -> its copy stored in us's stream
  (the two stream entry ids are both Redis clock times on this machine).
- post to remote timeline: ``POST /posts`` in eu sent -> the post in a us follower's home
  timeline (polled every 20 ms, so up to 20 ms late).
- outage catch-up: eu down (services, workers and Redis) while a us author posts; from eu's
  return (services up) until an eu follower's home timeline holds every one of those posts.
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
import uuid
from collections.abc import Generator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import cast

from redis.asyncio import Redis
from sqlalchemy.engine import URL, make_url

from terrascale.common.embedded import EmbeddedPostgres, EmbeddedValkey, RedisAddress
from terrascale.common.events import Envelope
from terrascale.common.events.redis_streams import StreamEntries
from terrascale.common.keys import generate_private_key_pem
from terrascale.common.testing.plugin import fresh_database
from terrascale.launcher.cli import DURABLE_VALKEY
from terrascale.regions.local import DATABASES, LocalRegion, TwoRegions, migrate, wait_for
from terrascale.regions.replicator import Replicator

POLL_SECONDS = 0.02
MIN_OUTAGE_SECONDS = 10.0
MAX_OUTAGE_POSTS = 40  # one home-timeline page: the catch-up check reads one page


@dataclass(frozen=True, slots=True)
class Figures:
    replication_lag: list[float]
    post_to_remote_timeline: list[float]
    post_to_local_timeline: list[float]
    outage_catch_up: list[float]
    outage_posts: int
    outage_seconds: float

    def table(self) -> str:
        def row(name: str, values: Sequence[float]) -> str:
            ms = [value * 1000 for value in values]
            return f"| {name} | {len(ms)} | {statistics.median(ms):,.0f} | {max(ms):,.0f} |"

        return "\n".join(
            [
                "| figure | samples | median ms | max ms |",
                "|---|---|---|---|",
                row("replication lag (eu stream -> us stream)", self.replication_lag),
                row("post in eu -> in a us follower's home timeline", self.post_to_remote_timeline),
                row(
                    "post in eu -> in an eu follower's (for comparison)",
                    self.post_to_local_timeline,
                ),
                row(
                    f"outage catch-up ({self.outage_posts} posts written in us during "
                    f"{self.outage_seconds:.0f} s of eu down; eu back -> all in eu timeline)",
                    self.outage_catch_up,
                ),
            ]
        )


@contextmanager
def servers(postgres_url: str | None, redis_url: str | None) -> Generator[tuple[URL, RedisAddress]]:
    """The given servers, or embedded ones for whichever is not given."""
    with ExitStack() as stack:
        folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="regions-")))
        if postgres_url:
            admin = make_url(postgres_url).set(drivername="postgresql+asyncpg")
        else:
            postgres = EmbeddedPostgres(folder / "postgres")
            stack.callback(postgres.stop)
            admin = postgres.start()
        if redis_url:
            redis = RedisAddress.from_url(redis_url)
        else:
            valkey = EmbeddedValkey(folder / "us-valkey", persist=False)
            stack.callback(valkey.stop)
            redis = valkey.start()
        yield admin, redis


async def stream_times(redis: Redis, prefix: str, partitions: int) -> dict[str, float]:
    """post id -> the time (s) its post.created entered the region's streams."""
    times: dict[str, float] = {}
    for partition in range(partitions):
        entries = cast(StreamEntries, await redis.xrange(f"{prefix}events:post:{partition}"))
        for entry_id, fields in entries:
            if fields is None:  # an entry trimmed while pending
                continue
            envelope = Envelope.from_json(fields[b"envelope"])
            if envelope.type == "post.created":
                times[str(envelope.data["post_id"])] = int(entry_id.split(b"-")[0]) / 1000
    return times


async def _sign_up(region: LocalRegion, name: str) -> int:
    response = await region.clients["users"].post("/users/", json={"username": name})
    response.raise_for_status()
    return int(response.json()["id"])


async def _timeline(regions: TwoRegions, region: LocalRegion, user_id: int) -> set[str]:
    response = await region.clients["timelines"].get(
        "/timelines/home", params={"limit": 40}, headers=regions.auth(user_id)
    )
    if response.is_error:
        raise RuntimeError(f"home timeline in {region.name}: {response.text}")
    return {item["id"] for item in response.json()}


@dataclass(frozen=True, slots=True)
class People:
    ada: int  # eu, followed by bob and carol
    bob: int  # us, follows ada, followed by ada
    carol: int  # eu, follows ada: the same region's delay, for comparison


async def _follow_each_other(regions: TwoRegions, tag: str) -> People:
    """ada (eu) and bob (us) following each other, carol (eu) following ada; each with a live
    home timeline."""
    eu, us = regions.eu, regions.us
    ada = await _sign_up(eu, f"ada_{tag}")
    bob = await _sign_up(us, f"bob_{tag}")
    carol = await _sign_up(eu, f"carol_{tag}")

    async def known(region: LocalRegion, user_id: int) -> bool:
        response = await region.clients["users"].get(f"/users/{user_id}")
        return response.is_success

    await wait_for(lambda: known(us, ada), seconds=60, what="ada in us")
    await wait_for(lambda: known(eu, bob), seconds=60, what="bob in eu")
    for follower, followee, region in ((bob, ada, us), (ada, bob, eu), (carol, ada, eu)):
        response = await region.clients["graph"].put(
            f"/users/{follower}/following/{followee}", headers=regions.auth(follower)
        )
        response.raise_for_status()
    for region, reader in ((us, bob), (eu, ada), (eu, carol)):
        await _timeline(regions, region, reader)
    await asyncio.sleep(2)  # the follows settle in both regions
    return People(ada=ada, bob=bob, carol=carol)


async def _time_posts(
    regions: TwoRegions, people: People, posts: int
) -> tuple[list[float], list[float], list[float]]:
    """(replication lags, delays to the remote follower's timeline, delays to the local one) of
    ``posts`` posts by ada, one at a time."""
    eu, us = regions.eu, regions.us
    remote: list[float] = []
    local: list[float] = []
    written: list[str] = []
    for n in range(posts):
        started = time.monotonic()
        post_id = await _post(regions, eu, people.ada, f"figure {n}")
        written.append(post_id)
        seen: dict[str, float] = {}

        async def arrived(
            post_id: str = post_id, seen: dict[str, float] = seen, started: float = started
        ) -> bool:
            for name, region, reader in (("us", us, people.bob), ("eu", eu, people.carol)):
                if name not in seen and post_id in await _timeline(regions, region, reader):
                    seen[name] = time.monotonic() - started
            return len(seen) == 2  # noqa: PLR2004 - both readers

        await wait_for(arrived, seconds=60, interval=POLL_SECONDS, what="post in both regions")
        remote.append(seen["us"])
        local.append(seen["eu"])
    in_eu = await _stream_times(eu)
    in_us = await _stream_times(us)
    lags = [in_us[post] - in_eu[post] for post in written if post in in_eu and post in in_us]
    return lags, remote, local


async def _stream_times(region: LocalRegion) -> dict[str, float]:
    redis = Redis(host=region.redis.host, port=region.redis.port, db=region.redis.db)
    try:
        return await stream_times(redis, region.key_prefix, region.events.event_partitions)
    finally:
        await redis.aclose()


async def _outage(
    regions: TwoRegions, eu_valkey: EmbeddedValkey, ada: int, bob: int, *, n: int, posts: int
) -> tuple[float, float]:
    """(catch-up seconds, outage seconds) of one outage of eu, Redis included."""
    eu, us = regions.eu, regions.us
    await eu.stop()
    eu_valkey.kill()
    down = time.monotonic()
    during = [await _post(regions, us, bob, f"outage {n} post {m}") for m in range(posts)]
    await asyncio.sleep(max(0.0, MIN_OUTAGE_SECONDS - (time.monotonic() - down)))
    outage = time.monotonic() - down
    eu_valkey.start()
    await eu.start()
    back = time.monotonic()

    async def caught_up() -> bool:
        return set(during) <= await _timeline(regions, eu, ada)

    await wait_for(caught_up, seconds=300, interval=POLL_SECONDS, what="eu caught up")
    return time.monotonic() - back, outage


async def measure(
    regions: TwoRegions, eu_valkey: EmbeddedValkey, *, posts: int, outages: int, outage_posts: int
) -> Figures:
    people = await _follow_each_other(regions, uuid.uuid4().hex[:6])
    lags, remote, local = await _time_posts(regions, people, posts)
    catch_ups: list[float] = []
    outage_seconds = 0.0
    for n in range(outages):
        catch_up, outage_seconds = await _outage(
            regions, eu_valkey, people.ada, people.bob, n=n, posts=outage_posts
        )
        catch_ups.append(catch_up)
    return Figures(lags, remote, local, catch_ups, outage_posts, outage_seconds)


async def _post(regions: TwoRegions, region: LocalRegion, author: int, text: str) -> str:
    response = await region.clients["posts"].post(
        "/posts", json={"text": text}, headers=regions.auth(author)
    )
    response.raise_for_status()
    return response.json()["id"]


def run_figures(
    *, postgres_url: str | None, redis_url: str | None, posts: int, outages: int, outage_posts: int
) -> Figures:
    """Start both regions and the replicators, measure, stop everything, drop the databases."""
    with servers(postgres_url, redis_url) as (admin, us_redis), ExitStack() as stack:
        folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="regions-eu-")))
        databases = {}
        for region in ("eu", "us"):
            databases[region] = {
                name: stack.enter_context(fresh_database(admin, prefix=f"regions_{region}_{name}"))
                for name in DATABASES
            }
            migrate(databases[region])
        eu_valkey = EmbeddedValkey(folder / "valkey", persist=True, config=DURABLE_VALKEY)
        stack.callback(eu_valkey.stop)
        eu_redis = eu_valkey.start()
        prefix = f"regions:{uuid.uuid4().hex[:8]}:"
        private_pem = generate_private_key_pem()
        # ERROR: the outages' connection warnings are expected here.
        eu = LocalRegion(
            "eu", databases["eu"], eu_redis, f"{prefix}eu:", private_pem, log_level="ERROR"
        )
        us = LocalRegion(
            "us", databases["us"], us_redis, f"{prefix}us:", private_pem, log_level="ERROR"
        )

        async def main() -> Figures:
            stop = asyncio.Event()
            await eu.start()
            await us.start()
            replicators = [
                asyncio.create_task(Replicator(source=eu.bus, target=us.bus).run_until(stop)),
                asyncio.create_task(Replicator(source=us.bus, target=eu.bus).run_until(stop)),
            ]
            try:
                return await measure(
                    TwoRegions(eu, us, private_pem),
                    eu_valkey,
                    posts=posts,
                    outages=outages,
                    outage_posts=outage_posts,
                )
            finally:
                stop.set()
                await asyncio.gather(*replicators, return_exceptions=True)
                await us.stop()
                await eu.stop()
                await _forget(us_redis, prefix)

        return asyncio.run(main())


async def _forget(address: RedisAddress, prefix: str) -> None:
    redis = Redis(host=address.host, port=address.port, db=address.db)
    try:
        keys = [key async for key in redis.scan_iter(match=f"{prefix}*", count=500)]
        if keys:
            await redis.delete(*keys)
    finally:
        await redis.aclose()
