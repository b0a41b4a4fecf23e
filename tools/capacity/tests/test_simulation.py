import pytest

from terrascale.capacity.model import mmc_mean_response
from terrascale.capacity.simulation import lognormal_sigma_from_quantiles, simulate_node


def test_the_same_seed_gives_the_same_result() -> None:
    first = simulate_node(500, 0.002, 2, requests=2_000, warmup=200, seed=7)
    again = simulate_node(500, 0.002, 2, requests=2_000, warmup=200, seed=7)
    other = simulate_node(500, 0.002, 2, requests=2_000, warmup=200, seed=8)
    assert first == again
    assert first != other


def test_p99_rises_with_load() -> None:
    p99s = [
        simulate_node(rate, 0.002, 2, requests=5_000, warmup=500).p99_ms
        for rate in (200, 500, 800, 950)
    ]
    assert p99s == sorted(p99s)
    assert p99s[-1] > 2 * p99s[0]


def test_exponential_service_matches_the_mmc_mean() -> None:
    result = simulate_node(
        700, 0.002, 2, distribution="exponential", requests=50_000, warmup=5_000, seed=3
    )
    expected_ms = mmc_mean_response(700, 500, 2) * 1000
    assert result.utilisation == pytest.approx(0.7)
    assert result.mean_ms == pytest.approx(expected_ms, rel=0.05)


def test_lognormal_keeps_the_mean_and_the_fitted_spread() -> None:
    sigma = lognormal_sigma_from_quantiles(3.81, 11.4)
    assert sigma == pytest.approx(0.471, abs=0.001)
    # At very light load the response is the service time alone.
    light = simulate_node(5, 0.002, 2, sigma=sigma, requests=20_000, warmup=100)
    assert light.mean_ms == pytest.approx(2.0, rel=0.03)
    assert light.p99_ms / light.p50_ms == pytest.approx(11.4 / 3.81, rel=0.1)
