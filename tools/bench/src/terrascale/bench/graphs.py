"""The social graphs the harness seeds: socfb-Reed98 and reproducible synthetic power-law graphs.

A graph here is directed: ``follows[u]`` is the set of users ``u`` follows. Undirected friendship
graphs (socfb-Reed98) become a follow in each direction, as DeathStarBench's initialiser does.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

REED98 = Path(__file__).resolve().parents[5] / "datasets" / "socfb-Reed98"


@dataclass(frozen=True, slots=True)
class Graph:
    name: str
    users: int  # users are 0 .. users-1
    follows: tuple[tuple[int, ...], ...]  # follows[u]: whom u follows, ascending

    @property
    def follow_count(self) -> int:
        return sum(len(followees) for followees in self.follows)

    def follower_counts(self) -> list[int]:
        counts = [0] * self.users
        for followees in self.follows:
            for followee in followees:
                counts[followee] += 1
        return counts


def _from_pairs(name: str, users: int, pairs: np.ndarray) -> Graph:
    """``pairs``: rows of (follower, followee); self-follows and repeats are dropped."""
    pairs = pairs[pairs[:, 0] != pairs[:, 1]]
    pairs = np.unique(pairs, axis=0)  # sorted by follower, then followee
    starts = np.searchsorted(pairs[:, 0], np.arange(users + 1))
    followees = pairs[:, 1].tolist()
    follows = tuple(tuple(followees[starts[user] : starts[user + 1]]) for user in range(users))
    return Graph(name, users, follows)


def read_undirected(edges_file: Path, users: int, name: str) -> Graph:
    """An undirected edge list (``a b`` per line, 0-based ids): a follow each way."""
    array = np.loadtxt(edges_file, dtype=np.int64, ndmin=2)
    both_ways = np.concatenate([array, array[:, ::-1]])
    return _from_pairs(name, users, both_ways)


def reed98() -> Graph:
    users = int((REED98 / "socfb-Reed98.nodes").read_text())
    return read_undirected(REED98 / "socfb-Reed98.edges", users, "socfb-Reed98")


def power_law(
    users: int,
    *,
    mean_degree: float = 20.0,
    exponent: float = 2.2,
    celebrities: int = 0,
    celebrity_reach: float = 0.5,
    seed: int = 1,
) -> Graph:
    """A Chung-Lu graph with a power-law degree tail, plus optional celebrities.

    Friendships are drawn between users picked with probability proportional to a weight
    ``w_i ~ (i + 1) ** (-1 / (exponent - 1))``, ``users * mean_degree / 2`` of them, and become a
    follow each way. Then each of the first ``celebrities`` users is followed (one way) by a
    random ``celebrity_reach`` share of everyone. The same arguments give the same graph.
    """
    if users < 2:  # noqa: PLR2004
        raise ValueError("a graph needs at least 2 users")
    if exponent <= 1:
        raise ValueError("the exponent must be above 1")
    rng = np.random.default_rng(seed)
    weights = (np.arange(users, dtype=np.float64) + 1) ** (-1 / (exponent - 1))
    weights /= weights.sum()
    friendships = round(users * mean_degree / 2)
    ends = rng.choice(users, size=(friendships, 2), p=weights)
    pairs = [ends, ends[:, ::-1]]
    for celebrity in range(min(celebrities, users)):
        fans = rng.choice(users, size=round(users * celebrity_reach), replace=False)
        pairs.append(np.column_stack([fans, np.full(fans.shape, celebrity)]))
    kind = f"power-law-{users}" + (f"-{celebrities}-celebrities" if celebrities else "")
    return _from_pairs(kind, users, np.concatenate(pairs).astype(np.int64))
