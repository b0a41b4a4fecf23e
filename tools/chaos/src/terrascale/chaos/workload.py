"""Writers and readers that keep going through faults, as careful clients do.

A writer posts a text with a unique marker that mentions one or two people its author follows,
under one Idempotency-Key, and retries that same request on 503, timeouts and connection errors
until it is acknowledged or the run ends. Readers read home timelines meanwhile. Every post and
every write attempt is recorded for the oracle.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from http import HTTPStatus

import orjson

from terrascale.bench.client import Client, encode_request
from terrascale.bench.graphs import Graph
from terrascale.bench.workload import Population, Workload
from terrascale.chaos.oracle import Attempt, SentPost

REQUEST_TIMEOUT_SECONDS = 5.0  # above DB_CONNECT_TIMEOUT_SECONDS: a 503 comes before it
RETRY_PAUSE_SECONDS = 0.25  # after a timeout or a refused connection
MAX_RETRY_AFTER_SECONDS = 1.0
RETRYABLE = {
    HTTPStatus.SERVICE_UNAVAILABLE,
    HTTPStatus.BAD_GATEWAY,
    HTTPStatus.GATEWAY_TIMEOUT,
    HTTPStatus.INTERNAL_SERVER_ERROR,  # a worker dying mid-request; the key makes it safe
    HTTPStatus.CONFLICT,  # Idempotency-Key busy: the first attempt is still being reclaimed
}


@dataclass
class Ledger:
    """Everything the clients did, and the phase (fault) new posts are attributed to."""

    run_tag: str
    phase: str = "start"
    posts: list[SentPost] = field(default_factory=list[SentPost])
    attempts: list[Attempt] = field(default_factory=list[Attempt])
    reads: dict[str, list[int]] = field(default_factory=dict[str, list[int]])  # phase -> ok, not
    unexpected: list[str] = field(default_factory=list[str])  # answers no retry can fix
    writes_in_flight: int = 0  # write requests sent and not answered yet

    def marker(self) -> str:
        return f"chaos{self.run_tag}n{len(self.posts):06d}"

    def count_read(self, ok: bool) -> None:
        tally = self.reads.setdefault(self.phase, [0, 0])
        tally[0 if ok else 1] += 1


class Clients:
    """``writers`` posting at ``rate`` posts/s in total, ``readers`` reading at ``read_rate``."""

    def __init__(
        self,
        *,
        ledger: Ledger,
        graph: Graph,
        population: Population,
        workload: Workload,
        post_service: str,
        writers: int,
        readers: int,
        rate: float,
        read_rate: float,
        rng: random.Random,
    ) -> None:
        self.ledger = ledger
        self.graph = graph
        self.population = population
        self.workload = workload
        self.post_url = f"{post_service}/posts"
        self.writers = writers
        self.readers = readers
        self.rate = rate
        self.read_rate = read_rate
        self.rng = rng
        self.client = Client(max(writers, readers))
        self._stop_new = asyncio.Event()  # no new posts
        self._give_up = asyncio.Event()  # no more retries either
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._write()) for _ in range(self.writers)]
        self._tasks += [asyncio.create_task(self._read()) for _ in range(self.readers)]

    async def stop(self, *, retry_for: float) -> None:
        """Stop posting; let posts in hand retry for ``retry_for`` seconds, then give them up."""
        self._stop_new.set()
        _, pending = await asyncio.wait(self._tasks, timeout=retry_for)
        self._give_up.set()
        await asyncio.gather(*pending)
        self.client.close()

    def _compose(self) -> tuple[SentPost, str, int]:
        while True:
            author = self.rng.randrange(self.graph.users)
            if self.graph.follows[author]:
                break
        followees = self.graph.follows[author]
        mentioned = self.rng.sample(followees, min(len(followees), self.rng.randint(1, 2)))
        post = SentPost(
            marker=self.ledger.marker(),
            phase=self.ledger.phase,
            author=self.population.ids[author],
            mentioned=tuple(self.population.ids[user] for user in mentioned),
        )
        self.ledger.posts.append(post)
        names = " ".join(f"@{self.population.usernames[user]}" for user in mentioned)
        return post, f"{post.marker} says hello to {names}", author

    async def _write(self) -> None:
        interval = self.writers / self.rate
        while not self._stop_new.is_set():
            started = time.monotonic()
            post, text, author = self._compose()
            request = encode_request(
                "compose-post",
                "POST",
                self.post_url,
                headers={
                    "Authorization": f"Bearer {self.population.tokens[author]}",
                    "Idempotency-Key": uuid.uuid4().hex,
                },
                body=orjson.dumps({"text": text}),
            )
            while not self._give_up.is_set():
                post.requests += 1
                pause = RETRY_PAUSE_SECONDS
                self.ledger.writes_in_flight += 1
                try:
                    answer = await asyncio.wait_for(
                        self.client.send(request), REQUEST_TIMEOUT_SECONDS
                    )
                except (TimeoutError, OSError):
                    answer = None
                finally:
                    self.ledger.writes_in_flight -= 1
                now = time.monotonic()
                if answer is not None and answer.status in {HTTPStatus.CREATED, HTTPStatus.OK}:
                    post.post_id = int(orjson.loads(answer.body)["id"])
                    post.acknowledged_at = now
                    self.ledger.attempts.append(Attempt(now, acknowledged=True))
                    break
                self.ledger.attempts.append(Attempt(now, acknowledged=False))
                if answer is not None and answer.status not in RETRYABLE:
                    self.ledger.unexpected.append(
                        f"{post.marker}: HTTP {answer.status} {answer.body[:200]!r}"
                    )
                    break
                if answer is not None and answer.status == HTTPStatus.SERVICE_UNAVAILABLE:
                    pause = MAX_RETRY_AFTER_SECONDS  # what Retry-After asks for
                await _sleep_unless(self._give_up, pause)
            else:
                post.given_up = post.post_id is None
            await _sleep_unless(self._stop_new, interval - (time.monotonic() - started))

    async def _read(self) -> None:
        interval = self.readers / self.read_rate
        while not self._stop_new.is_set():
            started = time.monotonic()
            request = self.workload.home(self.rng.randrange(len(self.population)))
            try:
                answer = await asyncio.wait_for(self.client.send(request), REQUEST_TIMEOUT_SECONDS)
                self.ledger.count_read(answer.status == HTTPStatus.OK)
            except (TimeoutError, OSError):
                self.ledger.count_read(False)
            await _sleep_unless(self._stop_new, interval - (time.monotonic() - started))


async def _sleep_unless(event: asyncio.Event, seconds: float) -> None:
    if seconds <= 0:
        return
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(event.wait(), seconds)


def small_graph(users: int, follows_each: int, rng: random.Random) -> Graph:
    """Each user follows ``follows_each`` others chosen uniformly: no celebrities, and every
    home timeline gets about ``follows_each / users`` of all posts."""
    follows = tuple(
        tuple(sorted(rng.sample([other for other in range(users) if other != user], follows_each)))
        for user in range(users)
    )
    return Graph(f"uniform, {users} users x {follows_each} follows", users, follows)


def followers_of(graph: Graph, ids: Sequence[int]) -> dict[int, list[int]]:
    """Author id -> follower ids."""
    followers: dict[int, list[int]] = {user_id: [] for user_id in ids}
    for follower, followees in enumerate(graph.follows):
        for followee in followees:
            followers[ids[followee]].append(ids[follower])
    return followers
