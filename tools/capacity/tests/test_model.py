import math
from dataclasses import replace

import pytest

from terrascale.capacity.inputs import Figure, Inputs
from terrascale.capacity.model import (
    TIB,
    by_name,
    erlang_c,
    failover_rtts,
    fanout_inserts_per_s,
    mean_rtt_to_others,
    mmc_mean_response,
    nodes_for_cpu,
    nodes_for_rate,
    partition_rate,
    partitions_needed,
    per_second,
    postgres_shards,
    project,
    timeline_memory_bytes,
)


def test_per_second_divides_a_day() -> None:
    assert per_second(86_400) == 1
    assert per_second(500e6) == pytest.approx(5_787.04, abs=0.01)


def test_nodes_for_rate_keeps_headroom_and_rounds_up() -> None:
    assert nodes_for_rate(600, 1_000, 0.6) == 1
    assert nodes_for_rate(601, 1_000, 0.6) == 2
    assert nodes_for_rate(0, 1_000, 0.6) == 0


def test_nodes_for_cpu_counts_cores() -> None:
    # 100 items/s x 12 ms = 1.2 cores; 2 cores at 60% give 1.2: exactly one node.
    assert nodes_for_cpu(100, 12, 2, 0.6) == 1
    assert nodes_for_cpu(101, 12, 2, 0.6) == 2


def test_fanout_skips_celebrity_posts_and_dead_timelines() -> None:
    assert fanout_inserts_per_s(100, 75, 0.0, 1.0) == 7_500
    assert fanout_inserts_per_s(100, 75, 0.2, 0.5) == pytest.approx(3_000)


def test_timeline_memory_of_the_measured_example() -> None:
    # bench/RESULTS.md: 1M users x 800 entries x 20.1 B = 14.9 GiB (one copy).
    assert timeline_memory_bytes(1e6, 800, 20.1, 1) / 2**30 == pytest.approx(14.98, abs=0.01)
    assert timeline_memory_bytes(1, 800, 20.1, 2) == pytest.approx(32_160)


def test_partition_rate_is_the_slower_bound() -> None:
    assert partition_rate(10, 735) == 100
    assert partition_rate(1, 735) == 735
    assert partitions_needed(120, 100, 0.6) == 2


def test_postgres_shards_add_read_and_write_load() -> None:
    # reads: 10,000 / (40,000 x 0.5) = 0.5 server; writes: 2,000 / (40,000 x 0.1) = 0.5.
    shards = postgres_shards(
        10_000,
        2_000,
        select_ceiling=40_000,
        read_efficiency=0.5,
        write_efficiency=0.1,
        headroom=0.5,
    )
    assert shards == 2


def test_erlang_c_and_mmc_against_textbook_values() -> None:
    assert erlang_c(1, 0.5) == pytest.approx(0.5)  # M/M/1: P(wait) = utilisation
    # M/M/1 at 50%: mean response 1 / (mu - lambda) = 2 service times.
    assert mmc_mean_response(0.5, 1, 1) == pytest.approx(2)
    # M/M/2, a = 1: C = 1/3, W = C / (2 - 1) + 1.
    assert erlang_c(2, 1) == pytest.approx(1 / 3)
    assert mmc_mean_response(1, 1, 2) == pytest.approx(4 / 3)
    with pytest.raises(ValueError, match="unstable"):
        erlang_c(2, 2)


def test_mean_rtt_to_others() -> None:
    links = [("a", "b", 10.0), ("a", "c", 30.0), ("b", "c", 50.0)]
    assert mean_rtt_to_others(links, "a") == 20
    assert mean_rtt_to_others(links, "c") == 40


def test_projection_of_the_default_inputs() -> None:
    values = by_name(project(Inputs()))
    assert values["posts, average"] == pytest.approx(500e6 / 86_400)
    assert values["timeline reads, average"] == pytest.approx(500e6 / 86_400 * 50)
    home_per_region = 500e6 / 86_400 * 2 * 50 * (2 / 3) / 5
    assert values["home timeline nodes per region"] == math.ceil(home_per_region / (918 * 0.6))
    assert (
        values["home timeline nodes, all regions"] == 5 * values["home timeline nodes per region"]
    )
    expected_memory = 500e6 * 800 * 20.1 * 2 / TIB
    assert values["home timeline memory, all regions"] == pytest.approx(expected_memory)


def test_more_readers_never_need_fewer_nodes() -> None:
    base = Inputs()
    heavier = replace(base, reads_per_write=Figure(100, "reads/post", "assumed", "test"))
    for name, value in by_name(project(base)).items():
        if name.endswith("nodes, all regions"):
            assert by_name(project(heavier))[name] >= value


def test_failover_rtts_of_the_default_links() -> None:
    worst, best = failover_rtts(Inputs())
    assert worst.value == pytest.approx((115 + 175 + 185 + 260) / 4)  # sa-east
    assert best.value == pytest.approx((65 + 75 + 115 + 150) / 4)  # us-east


def test_timeline_redis_for_memory() -> None:
    values = by_name(project(Inputs()))
    per_region_gib = 500e6 * 800 * 20.1 * 2 / 5 / 2**30
    assert values["timeline Redis (memory) nodes per region"] == math.ceil(per_region_gib / 64)
