"""DeathStarBench's social-network operations and mix, as requests to TerraScale's API.

DeathStarBench's wrk2 scripts (``socialNetwork/wrk2/scripts/social-network``) pick a user
uniformly at random for every request and:

- compose-post: a text of 256 random characters with 0-5 mentions and 0-5 URLs appended; here
  1-6 of each, as the workload this harness reproduces specifies, and the whole text is 256
  characters, mentions and URLs included, so it fits TerraScale's 500-character posts. URLs are
  22-character short links, as DeathStarBench's url-shorten service makes them;
- read-home-timeline / read-user-timeline: 10 posts from a random offset between 0 and 100.
  TerraScale pages by cursor (``max_id``), not offset, like Mastodon: a read asks for the newest
  page of 10, which is what a client opening the app does; deeper pages cost the same here (one
  range read with a bound), so offsets add nothing the newest page does not measure;
- mixed-workload: 60% home timeline, 30% user timeline, 10% compose.
"""

from __future__ import annotations

import random
import string
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import orjson

from terrascale.bench.client import Request, encode_request
from terrascale.common.auth import AccessTokenIssuer
from terrascale.common.keys import load_private_key

COMPOSE = "compose-post"
HOME = "read-home-timeline"
USER = "read-user-timeline"
MIXED = "mixed-workload"
OPERATIONS = (HOME, USER, COMPOSE)
MIX = {HOME: 0.6, USER: 0.3, COMPOSE: 0.1}
PAGE = 10
TEXT_LENGTH = 256
SHORT_URL = "http://sho.rt/"
SHORT_URL_CODE_LENGTH = 8
_ALPHABET = string.ascii_letters + string.digits


def token_issuer(private_key_pem: str) -> AccessTokenIssuer:
    """Access tokens signed with the system's key, as the User Service signs them, so seeding
    needs no password sign-ins; valid for 12 hours, longer than any run."""
    return AccessTokenIssuer(load_private_key(private_key_pem), "terrascale", "terrascale", 43_200)


@dataclass(frozen=True, slots=True)
class Population:
    """The seeded users: graph node i is ``ids[i]`` / ``usernames[i]`` with ``tokens[i]``."""

    ids: Sequence[int]
    usernames: Sequence[str]
    tokens: Sequence[str]

    def __len__(self) -> int:
        return len(self.ids)


@dataclass(frozen=True, slots=True)
class Endpoints:
    user: str
    post: str
    timeline: str


def compose_text(rng: random.Random, usernames: Sequence[str]) -> str:
    """256 characters: 1-6 mentions of random users and 1-6 URLs, padded with random words."""
    mentions = [f"@{rng.choice(usernames)}" for _ in range(rng.randint(1, 6))]
    urls = [
        SHORT_URL + "".join(rng.choices(_ALPHABET, k=SHORT_URL_CODE_LENGTH))
        for _ in range(rng.randint(1, 6))
    ]
    parts = mentions + urls
    rng.shuffle(parts)
    entities = " ".join(parts)
    room = TEXT_LENGTH - len(entities) - 1
    if room <= 0:  # long usernames: the entities alone fill the post
        return entities
    filler = ""
    while len(filler) < room:
        filler += "".join(rng.choices(_ALPHABET, k=rng.randint(3, 9))) + " "
    return filler[:room] + " " + entities


class Workload:
    """Builds the next request of an operation (or of the mix) for a uniformly chosen user."""

    def __init__(self, population: Population, endpoints: Endpoints, rng: random.Random) -> None:
        self.population = population
        self.endpoints = endpoints
        self.rng = rng
        self._builders: dict[str, Callable[[int], Request]] = {
            COMPOSE: self.compose,
            HOME: self.home,
            USER: self.user_timeline,
        }
        # Home-timeline requests carry a token and nothing else that varies: encode them once.
        self._home = [self._encode_home(user) for user in range(len(population))]

    def _auth(self, user: int) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.population.tokens[user]}"}

    def _encode_home(self, user: int) -> Request:
        url = f"{self.endpoints.timeline}/timelines/home?limit={PAGE}"
        return encode_request(HOME, "GET", url, headers=self._auth(user))

    def compose(self, user: int) -> Request:
        body = orjson.dumps({"text": compose_text(self.rng, self.population.usernames)})
        url = f"{self.endpoints.post}/posts"
        return encode_request(COMPOSE, "POST", url, headers=self._auth(user), body=body)

    def home(self, user: int) -> Request:
        return self._home[user]

    def user_timeline(self, user: int) -> Request:
        url = f"{self.endpoints.post}/users/{self.population.ids[user]}/posts?limit={PAGE}"
        return encode_request(USER, "GET", url)

    def next_request(self, operation: str) -> Callable[[], Request]:
        """A function giving a fresh request of ``operation`` (one of OPERATIONS, or MIXED)."""
        users = len(self.population)
        if operation != MIXED:
            build = self._builders[operation]
            return lambda: build(self.rng.randrange(users))
        names = list(MIX)
        cumulative = [sum(list(MIX.values())[: i + 1]) for i in range(len(names))]

        def mixed() -> Request:
            name = self.rng.choices(names, cum_weights=cumulative)[0]
            return self._builders[name](self.rng.randrange(users))

        return mixed
