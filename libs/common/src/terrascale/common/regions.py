"""Which region a user, post or event is homed in, from the logical shard inside every id.

A user gets a logical shard at sign-up and everything they write is minted on it (ADR 0002), so
splitting the shards between regions (``REGIONS=eu=0-511,us=512-1023``) gives every id a home
region with no lookup: the region a user's writes go to, and where their rows are authoritative.
Other regions hold replicas, filled from the events the replicator copies across.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass

from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from terrascale.common.auth import AuthenticationError
from terrascale.common.errors import problem_response
from terrascale.common.ids import MAX_SHARD, decode_id

WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
MISDIRECTED_REQUEST = 421  # RFC 9110 §15.5.20: this server is not the one to answer it


class RegionMapError(ValueError):
    """REGIONS or REGION does not describe a valid split of the shards."""


@dataclass(frozen=True, slots=True)
class RegionMap:
    """The shard ranges of every region, and the region this process runs in."""

    shards: Mapping[str, range]
    local: str

    @classmethod
    def parse(cls, spec: str, local: str) -> RegionMap:
        """``spec``: ``name=first-last`` pairs separated by commas (``eu=0-511,us=512-1023``)."""
        shards: dict[str, range] = {}
        for part in filter(None, (piece.strip() for piece in spec.split(","))):
            name, _, bounds = part.partition("=")
            first, _, last = bounds.partition("-")
            if not (name.strip() and first.strip().isdecimal() and last.strip().isdecimal()):
                raise RegionMapError(f"{part!r} is not like eu=0-511")
            span = range(int(first), int(last) + 1)
            if not span or span.stop - 1 > MAX_SHARD:
                raise RegionMapError(f"{part!r}: shards go from low to high, up to {MAX_SHARD}")
            shards[name.strip()] = span
        ordered = sorted(shards.values(), key=lambda span: span.start)
        if any(a.stop > b.start for a, b in itertools.pairwise(ordered)):
            raise RegionMapError(f"regions overlap in {spec!r}")
        if local not in shards:
            raise RegionMapError(f"REGION {local!r} is not one of REGIONS ({', '.join(shards)})")
        return cls(shards=shards, local=local)

    @property
    def names(self) -> Iterator[str]:
        return iter(self.shards)

    @property
    def local_shards(self) -> range:
        return self.shards[self.local]

    def home_of(self, entity_id: int) -> str | None:
        """The region whose shards minted ``entity_id``; None for a shard no region owns."""
        shard = decode_id(entity_id).shard
        return next((name for name, span in self.shards.items() if shard in span), None)

    def is_local(self, entity_id: int) -> bool:
        """True when ``entity_id`` is homed here (or on a shard no region claims)."""
        return self.home_of(entity_id) in (self.local, None)


def everyone_is_local(_entity_id: int) -> bool:
    """The single-region answer to ``RegionMap.is_local``."""
    return True


def locality(regions: RegionMap | None) -> Callable[[int], bool]:
    return everyone_is_local if regions is None else regions.is_local


class MisdirectedWriteGuard:
    """Refuses a write signed in as a user homed in another region, with 421 and the home
    region named: their rows are authoritative there, and a write here would fork them. Reads
    pass (they are served from the replicas); requests without a valid token pass to the route,
    which answers them as it always does."""

    def __init__(self, app: ASGIApp, *, regions: RegionMap) -> None:
        self.app = app
        self.regions = regions

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] in WRITE_METHODS:
            home = self._home_of_caller(scope)
            if home is not None and home != self.regions.local:
                await self._refuse(scope, receive, send, home)
                return
        await self.app(scope, receive, send)

    def _home_of_caller(self, scope: Scope) -> str | None:
        headers = dict(scope.get("headers") or [])
        scheme, _, token = headers.get(b"authorization", b"").decode("latin-1").partition(" ")
        verifier = getattr(scope["app"].state, "token_verifier", None)
        if scheme.lower() != "bearer" or not token or verifier is None:
            return None
        try:
            return self.regions.home_of(verifier.verify(token.strip()))
        except AuthenticationError:
            return None

    async def _refuse(self, scope: Scope, receive: Receive, send: Send, home: str) -> None:
        response = problem_response(
            Request(scope, receive),
            status=MISDIRECTED_REQUEST,
            title="Wrong region",
            type_uri="urn:terrascale:problem:wrong-region",
            detail=(
                f"You are homed in region {home!r}; this is region {self.regions.local!r}. "
                f"Send writes to {home!r}; reads are served here too."
            ),
            headers={"X-Home-Region": home},
            home_region=home,
        )
        await response(scope, receive, send)
