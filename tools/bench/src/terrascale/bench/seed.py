"""Seeding a running system with a graph, through the public API only.

Users sign up with ``POST /users/`` (no password: the harness signs their tokens with the
system's key), every follow goes through the Graph Service's follow-list import
(``POST /users/{id}/following``, 100 at a time, the same code and events as single follows),
then each user writes a few posts and reads their home timeline once, so that every timeline is
active as in DeathStarBench, where all users are.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from http import HTTPStatus

import orjson
from redis.asyncio import Redis
from sqlalchemy.engine import URL

from terrascale.bench.client import Client, Request, Response, encode_request
from terrascale.bench.graphs import Graph
from terrascale.bench.workload import Endpoints, Population, Workload
from terrascale.common.auth import AccessTokenIssuer
from terrascale.common.events import EventSettings, events_settled

FOLLOWS_PER_REQUEST = 100
EVENT_KEY_PREFIX = EventSettings.model_fields["event_key_prefix"].default
RETRIES = 20
RETRY_SECONDS = 1.0  # what the services' 503s ask for in Retry-After


class SeedingError(RuntimeError):
    pass


def say(message: str) -> None:
    print(f"bench: {message}", flush=True)


async def send_all(requests: Iterable[Request], *, concurrency: int, what: str) -> list[Response]:
    """Every request, ``concurrency`` at a time, retrying 503s as their ``Retry-After`` asks;
    any other answer of 400 or more stops seeding."""
    pending = list(requests)
    answers: list[Response | None] = [None] * len(pending)
    client = Client(concurrency)
    cursor = 0

    async def sender() -> None:
        nonlocal cursor
        while cursor < len(pending):
            index = cursor
            cursor += 1
            response = await client.send(pending[index])
            for _ in range(RETRIES):
                if response.status != HTTPStatus.SERVICE_UNAVAILABLE:
                    break
                await asyncio.sleep(RETRY_SECONDS)
                response = await client.send(pending[index])
            if response.status >= 400:  # noqa: PLR2004
                detail = response.body[:300].decode(errors="replace")
                raise SeedingError(f"{what}: HTTP {response.status}: {detail}")
            answers[index] = response

    try:
        await asyncio.gather(*(sender() for _ in range(concurrency)))
    finally:
        client.close()
    return [answer for answer in answers if answer is not None]


@dataclass(frozen=True, slots=True)
class SeedTimings:
    users_seconds: float
    follows_seconds: float
    posts_seconds: float
    settle_seconds: float
    activate_seconds: float

    @property
    def total(self) -> float:
        return (
            self.users_seconds
            + self.follows_seconds
            + self.posts_seconds
            + self.settle_seconds
            + self.activate_seconds
        )


async def wait_until_settled(
    redis: Redis, postgres: URL | None, databases: Sequence[str], within: float = 1800
) -> None:
    deadline = time.monotonic() + within
    urls = [postgres.set(database=name) for name in databases] if postgres else []
    while not await events_settled(redis, urls, event_key_prefix=EVENT_KEY_PREFIX):
        if time.monotonic() > deadline:
            raise SeedingError(f"events still in flight after {within:.0f} s")
        await asyncio.sleep(0.5)


def _chunks(items: Sequence[int], size: int) -> Iterable[Sequence[int]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


async def seed(
    graph: Graph,
    *,
    endpoints: Endpoints,
    graph_service: str,
    issuer: AccessTokenIssuer,
    redis: Redis,
    postgres: URL | None,
    databases: Sequence[str],
    posts_per_user: int,
    concurrency: int,
    rng: random.Random,
) -> tuple[Population, SeedTimings]:
    tag = f"{rng.randrange(36**4):04x}"
    usernames = [f"u{tag}_{node}" for node in range(graph.users)]
    clock = time.perf_counter

    started = clock()
    signups = (
        encode_request(
            "sign-up", "POST", f"{endpoints.user}/users/", body=orjson.dumps({"username": name})
        )
        for name in usernames
    )
    answers = await send_all(signups, concurrency=concurrency, what="sign-up")
    ids = [int(orjson.loads(answer.body)["id"]) for answer in answers]
    tokens = [issuer.issue(user_id) for user_id in ids]
    population = Population(ids, usernames, tokens)
    users_seconds = clock() - started
    say(f"{graph.users:,} users signed up in {users_seconds:.1f} s")

    started = clock()

    def follow_lists() -> Iterable[Request]:
        for node, followees in enumerate(graph.follows):
            for chunk in _chunks(followees, FOLLOWS_PER_REQUEST):
                body = orjson.dumps({"user_ids": [str(ids[followee]) for followee in chunk]})
                yield encode_request(
                    "follow-list",
                    "POST",
                    f"{graph_service}/users/{ids[node]}/following",
                    headers={"Authorization": f"Bearer {tokens[node]}"},
                    body=body,
                )

    await send_all(follow_lists(), concurrency=concurrency, what="follow-list import")
    follows_seconds = clock() - started
    say(
        f"{graph.follow_count:,} follows in {follows_seconds:.1f} s "
        f"({graph.follow_count / follows_seconds:,.0f}/s)"
    )

    started = clock()
    workload = Workload(population, endpoints, rng)
    compose = [workload.compose(node) for node in range(graph.users)] * posts_per_user
    await send_all(compose, concurrency=concurrency, what="compose-post")
    posts_seconds = clock() - started
    say(f"{len(compose):,} posts in {posts_seconds:.1f} s")

    started = clock()
    await wait_until_settled(redis, postgres, databases)
    settle_seconds = clock() - started
    say(f"events settled {settle_seconds:.1f} s later")

    started = clock()
    reads = (workload.home(node) for node in range(graph.users))
    await send_all(reads, concurrency=concurrency, what="first home timeline read")
    activate_seconds = clock() - started
    say(f"{graph.users:,} home timelines built in {activate_seconds:.1f} s")
    timings = SeedTimings(
        users_seconds, follows_seconds, posts_seconds, settle_seconds, activate_seconds
    )
    return population, timings
