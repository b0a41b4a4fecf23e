"""Every input of the model in one place, each with its value, unit and source.

*Measured* figures are copied from this repository's benchmark documents (file and row named).
*Assumed* figures are workload assumptions: from the issue, from public figures, or our own
choice where nothing better exists, and they say so. Figures marked "context only" enter no
formula; they are listed so the table shows what the sizing leaves aside.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Literal

Kind = Literal["measured", "assumed", "repo setting"]

RESULTS = "bench/RESULTS.md"
RELIABILITY = "docs/reliability.md"
TIMELINE_README = "services/timeline-service/README.md"
ISSUE = "issue 'ARCHITECTURE.md, sharding and multi-region' §3"
TWITTER_2013 = "Twitter Engineering blog, 'New Tweets per second record, and how!' (2013)"


@dataclass(frozen=True, slots=True)
class Figure:
    value: float
    unit: str
    kind: Kind
    source: str


@dataclass(frozen=True, slots=True)
class RegionLink:
    """A round-trip time between two regions; all of them are assumptions."""

    a: str
    b: str
    rtt_ms: float


_RTT_SOURCE = "assumed: typical public-cloud inter-region round trip, rounded; not measured here"

# Five regions; round trips are in the range public clouds publish between such regions.
DEFAULT_LINKS = (
    RegionLink("us-east", "us-west", 65),
    RegionLink("us-east", "eu-west", 75),
    RegionLink("us-east", "sa-east", 115),
    RegionLink("us-east", "ap-northeast", 150),
    RegionLink("us-west", "eu-west", 140),
    RegionLink("us-west", "sa-east", 175),
    RegionLink("us-west", "ap-northeast", 100),
    RegionLink("eu-west", "sa-east", 185),
    RegionLink("eu-west", "ap-northeast", 220),
    RegionLink("sa-east", "ap-northeast", 260),
)


@dataclass(frozen=True, slots=True)
class Inputs:
    # --- measured on the 2-vCPU reference machine (generator and all services share it) ---
    home_timeline_rps_per_node: Figure = Figure(
        918,
        "req/s",
        "measured",
        f"{RESULTS}, Maximum throughput, row read-home-timeline (2 vCPUs, 2 workers)",
    )
    home_timeline_p50_ms_light_load: Figure = Figure(
        3.81, "ms", "measured", f"{RESULTS}, Open loop, row read-home-timeline at 230 req/s"
    )
    home_timeline_p99_ms_light_load: Figure = Figure(
        11.4, "ms", "measured", f"{RESULTS}, Open loop, row read-home-timeline at 230 req/s"
    )
    user_timeline_rps_per_node: Figure = Figure(
        833, "req/s", "measured", f"{RESULTS}, Maximum throughput, row read-user-timeline"
    )
    compose_posts_per_node: Figure = Figure(
        72,
        "posts/s",
        "measured",
        f"{RESULTS}, Maximum throughput, row compose-post (whole system on 2 vCPUs)",
    )
    post_request_cpu_ms: Figure = Figure(
        7.9, "ms CPU/post", "measured", f"{RESULTS}, What profiling found is left: Post Service"
    )
    timeline_worker_cpu_ms: Figure = Figure(
        5.9, "ms CPU/post", "measured", f"{RESULTS}, What profiling found is left: timeline worker"
    )
    notification_worker_cpu_ms: Figure = Figure(
        10.1,
        "ms CPU/post",
        "measured",
        f"{RESULTS}, What profiling found is left: notification worker",
    )
    profiled_graph_users: Figure = Figure(
        962, "users", "measured", f"{RESULTS}, header: socfb-Reed98 (the profiled graph)"
    )
    profiled_graph_follows: Figure = Figure(
        37_624, "follows", "measured", f"{RESULTS}, header: socfb-Reed98 (the profiled graph)"
    )
    cached_profile_rps_per_node: Figure = Figure(
        4_768, "req/s", "measured", f"{RESULTS}, Maximum throughput, row cached GET /users/{{id}}"
    )
    follow_writes_per_node: Figure = Figure(
        800, "follows/s", "measured", f"{RESULTS}, Seeding row: 37,624 follows in 47.0 s"
    )
    fanout_inserts_per_redis_node: Figure = Figure(
        96_080,
        "inserts/s",
        "measured",
        f"{RESULTS}, fan-out table, row one script call per batch of 1,000 (a lower bound)",
    )
    timeline_entry_bytes: Figure = Figure(
        20.1,
        "bytes",
        "measured",
        f"{RESULTS}, memory row zset-max-listpack-entries=1024 (listpack)",
    )
    pgbench_select_tps: Figure = Figure(
        41_021, "tx/s", "measured", f"{RESULTS}, Ceilings, pgbench -S -c 8 -j 2, scale 10"
    )
    redis_get_single_per_s: Figure = Figure(
        31_442, "ops/s", "measured", f"{RESULTS}, Ceilings, Redis GET one per round trip"
    )
    redis_get_pipelined_per_s: Figure = Figure(
        1_250_000,
        "ops/s",
        "measured",
        f"{RESULTS}, Ceilings, Redis GET 16 pipelined (context only)",
    )
    relay_publish_per_s: Figure = Figure(
        14_228,
        "events/s",
        "measured",
        f"{RELIABILITY}, durability cost table, row fsync every write, relay publishes",
    )
    consumer_inbox_per_s: Figure = Figure(
        735,
        "events/s",
        "measured",
        f"{RELIABILITY}, durability cost table, row fsync every write, consumer inbox handler",
    )
    consumer_noop_per_s: Figure = Figure(
        3_705,
        "events/s",
        "measured",
        f"{RELIABILITY}, durability cost table, row fsync every write, consumer no-op handler"
        " (context only)",
    )
    event_xadd_pipelined_per_s: Figure = Figure(
        150_376,
        "XADD/s",
        "measured",
        f"{RELIABILITY}, durability cost table, row fsync every write, XADD 16 pipelined",
    )
    vcpus_per_node: Figure = Figure(2, "vCPUs", "measured", f"{RESULTS}, Machine line")
    workers_per_node: Figure = Figure(
        2, "workers", "measured", f"{RESULTS}, On that machine: Gunicorn + 2 Uvicorn workers"
    )
    redis_round_trips_per_home_read: Figure = Figure(
        2, "round trips", "measured", f"{RESULTS}, What profiling found is left: Home read"
    )
    # --- settings of this repository ---
    timeline_cap: Figure = Figure(
        800,
        "posts",
        "repo setting",
        f"{TIMELINE_README}, TIMELINE_MAX_POSTS (800, as Twitter and Mastodon)",
    )
    celebrity_threshold: Figure = Figure(
        10_000,
        "followers",
        "repo setting",
        f"{TIMELINE_README}, CELEBRITY_FOLLOWER_THRESHOLD; docs/adr/0008 (context only)",
    )
    # --- workload assumptions ---
    daily_active_users: Figure = Figure(500e6, "users", "assumed", f"{ISSUE}")
    posts_per_day: Figure = Figure(
        500e6, "posts/day", "assumed", f"{ISSUE}; Twitter 2013: ~500M tweets/day"
    )
    reads_per_write: Figure = Figure(50, "reads/post", "assumed", f"{ISSUE}")
    average_fanout: Figure = Figure(
        75, "followers/post", "assumed", f"{ISSUE} (mean over authors below the threshold)"
    )
    largest_follower_count: Figure = Figure(
        100e6, "followers", "assumed", f"{ISSUE}; merged at read time, docs/adr/0008 (context only)"
    )
    celebrity_post_share: Figure = Figure(
        0.01,
        "fraction of posts",
        "assumed",
        "assumed: no public figure; posts by authors above the threshold, not fanned out",
    )
    home_share_of_timeline_reads: Figure = Figure(
        2 / 3,
        "fraction",
        "assumed",
        f"DeathStarBench mix 60/30 home/user timeline ({RESULTS}, mixed workload)",
    )
    profile_reads_per_timeline_read: Figure = Figure(
        0.1, "reads/read", "assumed", "assumed: no public figure"
    )
    follows_per_user_per_day: Figure = Figure(
        1, "follows/user/day", "assumed", "assumed: no public figure"
    )
    peak_to_average: Figure = Figure(
        2,
        "x",
        "assumed",
        "assumed diurnal peak; Twitter's 2013 record (25x its average) is a spike, not sized for",
    )
    twitter_2013_posts_per_s: Figure = Figure(
        5_700, "posts/s", "assumed", f"{TWITTER_2013}: average; cross-check only"
    )
    twitter_2013_peak_posts_per_s: Figure = Figure(
        143_199, "posts/s", "assumed", f"{TWITTER_2013}: record peak; cross-check only"
    )
    twitter_2013_timeline_reads_per_s: Figure = Figure(
        300_000,
        "reads/s",
        "assumed",
        "Twitter, 'Timelines at Scale' (QCon 2012, InfoQ 2013); cross-check only",
    )
    regions: Figure = Figure(5, "regions", "assumed", f"{ISSUE}")
    cpu_headroom: Figure = Figure(
        0.6, "utilisation", "assumed", "target: nodes run at most 60% busy at peak"
    )
    timeline_user_fraction: Figure = Figure(
        1.0,
        "of DAU",
        "assumed",
        "assumed: every daily user has a timeline in Redis (TTL 30 days keeps more)",
    )
    redis_node_memory_gib: Figure = Figure(
        64,
        "GiB",
        "assumed",
        "assumed: usable memory of one timeline Redis node, leaving room for replication buffers",
    )
    redis_replicas: Figure = Figure(2, "copies", "assumed", "assumed: a primary and one replica")
    pg_write_tx_per_post: Figure = Figure(
        3,
        "tx/post",
        "assumed",
        "post insert with its outbox row, timeline projection, notification (the code's paths)",
    )
    pg_read_statements_per_timeline_read: Figure = Figure(
        1, "statements", "assumed", f"{RESULTS}, Home read: one SQL statement"
    )
    pg_read_efficiency: Figure = Figure(
        0.5, "of pgbench -S", "assumed", "assumed: a real read against a point select"
    )
    pg_write_efficiency: Figure = Figure(
        0.1,
        "of pgbench -S",
        "assumed",
        "assumed: a committed write (fsync, WAL, indexes) against a point select",
    )
    failover_load_factor: Figure = Figure(
        1.25, "x", "assumed", "one of 5 regions fails; its users spread over the other 4"
    )
    links: tuple[RegionLink, ...] = DEFAULT_LINKS

    def figures(self) -> list[tuple[str, Figure]]:
        """Every figure with its field name, in declaration order."""
        named: list[tuple[str, Figure]] = []
        for field in fields(self):
            value = getattr(self, field.name)
            if isinstance(value, Figure):
                named.append((field.name, value))
        return named

    def link_figures(self) -> list[tuple[str, Figure]]:
        return [
            (f"rtt {link.a} - {link.b}", Figure(link.rtt_ms, "ms", "assumed", _RTT_SOURCE))
            for link in self.links
        ]
