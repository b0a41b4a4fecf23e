"""The graphs the harness seeds: the shipped dataset as published, synthetic ones reproducible."""

from __future__ import annotations

import pytest

from terrascale.bench.graphs import power_law, reed98


def test_reed98_is_every_friendship_both_ways() -> None:
    graph = reed98()
    assert graph.users == 962
    assert graph.follow_count == 2 * 18_812  # the dataset's edges, each followed both ways
    follows = {(user, followee) for user in range(graph.users) for followee in graph.follows[user]}
    assert all((followee, user) in follows for user, followee in follows)


def test_a_power_law_graph_is_the_same_for_the_same_seed() -> None:
    assert power_law(2_000, seed=7) == power_law(2_000, seed=7)
    assert power_law(2_000, seed=7) != power_law(2_000, seed=8)


def test_a_power_law_graph_has_a_heavy_tail_and_no_self_follows() -> None:
    graph = power_law(5_000, mean_degree=20, exponent=2.2)
    followers = sorted(graph.follower_counts(), reverse=True)
    mean = graph.follow_count / graph.users
    assert 10 <= mean <= 20  # repeats of a friendship collapse into one
    assert followers[0] > 20 * mean  # a few users have far more followers than the typical one
    assert all(user not in graph.follows[user] for user in range(graph.users))


def test_celebrities_are_followed_by_their_reach() -> None:
    graph = power_law(4_000, celebrities=2, celebrity_reach=0.5, seed=3)
    counts = graph.follower_counts()
    assert counts[0] >= 2_000 * 0.99
    assert counts[1] >= 2_000 * 0.99
    assert "2-celebrities" in graph.name


@pytest.mark.parametrize(("users", "exponent"), [(1, 2.2), (100, 1.0)])
def test_impossible_graphs_are_refused(users: int, exponent: float) -> None:
    with pytest.raises(ValueError, match=r"at least|exponent"):
        power_law(users, exponent=exponent)
