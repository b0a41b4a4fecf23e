"""Closed-form capacity math: pure functions, then `project` applying them to `Inputs`."""

from __future__ import annotations

import math
from dataclasses import dataclass

from terrascale.capacity.inputs import Inputs

SECONDS_PER_DAY = 86_400
GIB = 2**30
TIB = 2**40


def per_second(per_day: float) -> float:
    return per_day / SECONDS_PER_DAY


def nodes_for_rate(rate: float, per_node: float, headroom: float) -> int:
    """Nodes so that each serves at most ``headroom`` of its measured maximum."""
    return math.ceil(rate / (per_node * headroom))


def nodes_for_cpu(rate: float, cpu_ms: float, vcpus: float, headroom: float) -> int:
    """Nodes of ``vcpus`` cores for work costing ``cpu_ms`` of CPU per item."""
    return math.ceil(rate * cpu_ms / 1000 / (vcpus * headroom))


def fanout_inserts_per_s(
    posts_per_s: float, fanout: float, celebrity_share: float, active_fraction: float
) -> float:
    """Timeline inserts: celebrity posts are merged at read time; only live timelines get one."""
    return posts_per_s * (1 - celebrity_share) * fanout * active_fraction


def timeline_memory_bytes(
    users: float, cap: float, bytes_per_entry: float, replicas: float
) -> float:
    return users * cap * bytes_per_entry * replicas


def partition_rate(handler_cpu_ms: float, inbox_ceiling_per_s: float) -> float:
    """One consumer per partition works serially: its CPU per event or its commits bound it."""
    return min(1000 / handler_cpu_ms, inbox_ceiling_per_s)


def partitions_needed(events_per_s: float, per_partition: float, headroom: float) -> int:
    return math.ceil(events_per_s / (per_partition * headroom))


def postgres_shards(
    reads_per_s: float,
    writes_per_s: float,
    *,
    select_ceiling: float,
    read_efficiency: float,
    write_efficiency: float,
    headroom: float,
) -> int:
    """Shards whose summed read and write load stays under ``headroom`` of one server each."""
    servers = reads_per_s / (select_ceiling * read_efficiency) + writes_per_s / (
        select_ceiling * write_efficiency
    )
    return math.ceil(servers / headroom)


def erlang_c(servers: int, offered_load: float) -> float:
    """Probability an arrival waits in M/M/c; ``offered_load`` = arrival rate / service rate."""
    utilisation = offered_load / servers
    if utilisation >= 1:
        raise ValueError("the queue is unstable at utilisation >= 1")
    term = 1.0
    total = 1.0
    for k in range(1, servers):
        term *= offered_load / k
        total += term
    last = term * offered_load / servers / (1 - utilisation)
    return last / (total + last)


def mmc_mean_response(arrival_rate: float, service_rate: float, servers: int) -> float:
    """Mean time in an M/M/c system (wait plus service), in the rates' time unit."""
    waiting = erlang_c(servers, arrival_rate / service_rate)
    return waiting / (servers * service_rate - arrival_rate) + 1 / service_rate


def mean_rtt_to_others(links: list[tuple[str, str, float]], region: str) -> float:
    rtts = [rtt for a, b, rtt in links if region in (a, b)]
    return sum(rtts) / len(rtts)


@dataclass(frozen=True, slots=True)
class Output:
    name: str
    value: float
    unit: str
    formula: str


def project(inputs: Inputs) -> list[Output]:
    """Every computed figure, in the order the report lists them."""
    i = inputs
    headroom = i.cpu_headroom.value
    regions = i.regions.value
    peak = i.peak_to_average.value
    out: list[Output] = []

    def add(name: str, value: float, unit: str, formula: str) -> float:
        out.append(Output(name, value, unit, formula))
        return value

    posts_avg = add(
        "posts, average", per_second(i.posts_per_day.value), "posts/s", "posts_per_day / 86,400"
    )
    posts_peak = add("posts, peak", posts_avg * peak, "posts/s", "average x peak_to_average")
    add(
        "posts against Twitter 2013",
        posts_avg / i.twitter_2013_posts_per_s.value,
        "x",
        "posts average / Twitter's 2013 average",
    )
    add(
        "Twitter 2013 record spike",
        i.twitter_2013_peak_posts_per_s.value / i.twitter_2013_posts_per_s.value,
        "x average",
        "record peak / average: what the diurnal peak factor does not cover",
    )
    reads_avg = add(
        "timeline reads, average",
        posts_avg * i.reads_per_write.value,
        "reads/s",
        "posts/s x reads_per_write",
    )
    add(
        "timeline reads against Twitter 2013",
        reads_avg / i.twitter_2013_timeline_reads_per_s.value,
        "x",
        "timeline reads average / Twitter's 2013 timeline reads",
    )
    reads_peak = add("timeline reads, peak", reads_avg * peak, "reads/s", "average x peak")
    home_peak = add(
        "home timeline reads, peak",
        reads_peak * i.home_share_of_timeline_reads.value,
        "reads/s",
        "timeline reads x home share",
    )
    user_peak = add(
        "user timeline reads, peak", reads_peak - home_peak, "reads/s", "timeline reads - home"
    )
    profile_peak = add(
        "profile reads, peak",
        reads_peak * i.profile_reads_per_timeline_read.value,
        "reads/s",
        "timeline reads x profile_reads_per_timeline_read",
    )
    follows_peak = add(
        "follows, peak",
        per_second(i.daily_active_users.value * i.follows_per_user_per_day.value) * peak,
        "follows/s",
        "DAU x follows_per_user_per_day / 86,400 x peak",
    )

    def per_region(name: str, nodes_in_region: int, formula: str) -> None:
        add(f"{name} nodes per region", nodes_in_region, "nodes", formula)
        add(f"{name} nodes, all regions", nodes_in_region * regions, "nodes", "x regions")

    per_region(
        "home timeline",
        nodes_for_rate(home_peak / regions, i.home_timeline_rps_per_node.value, headroom),
        "ceil(home peak / regions / (918 x headroom))",
    )
    per_region(
        "user timeline",
        nodes_for_rate(user_peak / regions, i.user_timeline_rps_per_node.value, headroom),
        "ceil(user peak / regions / (833 x headroom))",
    )
    per_region(
        "post write",
        nodes_for_cpu(
            posts_peak / regions, i.post_request_cpu_ms.value, i.vcpus_per_node.value, headroom
        ),
        "ceil(posts peak / regions x 7.9 ms / (vCPUs x headroom))",
    )
    add(
        "post write nodes per region, whole-system check",
        nodes_for_rate(posts_peak / regions, i.compose_posts_per_node.value, headroom),
        "nodes",
        "ceil(posts peak / regions / (72 x headroom)): compose with all its downstream work",
    )
    profiled_fanout = add(
        "fan-out of the profiled graph",
        i.profiled_graph_follows.value / i.profiled_graph_users.value,
        "followers/post",
        "follows / users of socfb-Reed98",
    )
    fanout_cpu_ms = add(
        "timeline worker CPU at the assumed fan-out",
        i.timeline_worker_cpu_ms.value * i.average_fanout.value / profiled_fanout,
        "ms CPU/post",
        "5.9 ms x average_fanout / profiled fan-out (linear: pessimistic)",
    )
    per_region(
        "fan-out worker",
        nodes_for_cpu(
            posts_peak * (1 - i.celebrity_post_share.value) / regions,
            fanout_cpu_ms,
            i.vcpus_per_node.value,
            headroom,
        ),
        "ceil(non-celebrity posts peak / regions x worker CPU / (vCPUs x headroom))",
    )
    per_region(
        "notification worker",
        nodes_for_cpu(
            posts_peak / regions,
            i.notification_worker_cpu_ms.value,
            i.vcpus_per_node.value,
            headroom,
        ),
        "ceil(posts peak / regions x 10.1 ms / (vCPUs x headroom))",
    )
    per_region(
        "user/profile",
        nodes_for_rate(profile_peak / regions, i.cached_profile_rps_per_node.value, headroom),
        "ceil(profile peak / regions / (4,768 x headroom))",
    )
    per_region(
        "graph",
        nodes_for_rate(follows_peak / regions, i.follow_writes_per_node.value, headroom),
        "ceil(follows peak / regions / (800 x headroom))",
    )
    inserts = add(
        "fan-out inserts, peak",
        fanout_inserts_per_s(
            posts_peak,
            i.average_fanout.value,
            i.celebrity_post_share.value,
            i.timeline_user_fraction.value,
        ),
        "inserts/s",
        "posts peak x (1 - celebrity share) x average_fanout x timeline_user_fraction",
    )
    # Every region keeps every timeline of its own users; a post fans out in each region's copy
    # only for the followers living there, so inserts split across regions.
    per_region(
        "timeline Redis (fan-out)",
        nodes_for_rate(inserts / regions, i.fanout_inserts_per_redis_node.value, headroom),
        "ceil(inserts / regions / (96,080 x headroom))",
    )
    per_region(
        "timeline Redis (home-read round trips)",
        nodes_for_rate(
            home_peak * i.redis_round_trips_per_home_read.value / regions,
            i.redis_get_single_per_s.value,
            headroom,
        ),
        "ceil(home peak x 2 round trips / regions / (31,442 x headroom))",
    )
    memory = add(
        "home timeline memory, all regions",
        timeline_memory_bytes(
            i.daily_active_users.value * i.timeline_user_fraction.value,
            i.timeline_cap.value,
            i.timeline_entry_bytes.value,
            i.redis_replicas.value,
        )
        / TIB,
        "TiB",
        "DAU x fraction x 800 x 20.1 B x replicas",
    )
    memory_per_region = add(
        "home timeline memory per region", memory / regions * 1024, "GiB", "total / regions"
    )
    per_region(
        "timeline Redis (memory)",
        math.ceil(memory_per_region / i.redis_node_memory_gib.value),
        "ceil(memory per region / node memory)",
    )
    add(
        "post events, peak per region",
        posts_peak / regions,
        "events/s",
        "posts peak / regions (one post.created per post)",
    )
    notification_partition = add(
        "notification consumer, one partition",
        partition_rate(i.notification_worker_cpu_ms.value, i.consumer_inbox_per_s.value),
        "events/s",
        "min(1000 / 10.1 ms, inbox handler 735/s)",
    )
    timeline_partition = add(
        "timeline consumer, one partition",
        partition_rate(fanout_cpu_ms, i.consumer_inbox_per_s.value),
        "events/s",
        "min(1000 / worker CPU, inbox handler 735/s)",
    )
    add(
        "post partitions per region",
        partitions_needed(
            posts_peak / regions, min(notification_partition, timeline_partition), headroom
        ),
        "partitions",
        "ceil(post events per region / (slowest consumer per partition x headroom))",
    )
    add(
        "outbox relays per region (post database)",
        nodes_for_rate(posts_peak / regions, i.relay_publish_per_s.value, headroom),
        "relays",
        "ceil(post events per region / (14,228 x headroom))",
    )
    add(
        "event bus Redis load per region",
        posts_peak / regions / i.event_xadd_pipelined_per_s.value,
        "of one node",
        "post events per region / 150,376 XADD/s (pipelined, fsync always)",
    )
    pg_reads = add(
        "PostgreSQL reads, peak",
        reads_peak * i.pg_read_statements_per_timeline_read.value,
        "statements/s",
        "timeline reads x statements per read (profiles from cache)",
    )
    pg_writes = add(
        "PostgreSQL writes, peak",
        posts_peak * i.pg_write_tx_per_post.value + follows_peak,
        "tx/s",
        "posts peak x tx per post + follows peak",
    )
    per_region(
        "PostgreSQL shard",
        postgres_shards(
            pg_reads / regions,
            pg_writes / regions,
            select_ceiling=i.pgbench_select_tps.value,
            read_efficiency=i.pg_read_efficiency.value,
            write_efficiency=i.pg_write_efficiency.value,
            headroom=headroom,
        ),
        "ceil((reads / (41,021 x read eff.) + writes / (41,021 x write eff.)) / headroom)",
    )
    out += failover_rtts(i)
    return out


def failover_rtts(inputs: Inputs) -> list[Output]:
    """Extra round trip for users served by another region, best and worst home region."""
    region_names = sorted({name for link in inputs.links for name in (link.a, link.b)})
    triples = [(link.a, link.b, link.rtt_ms) for link in inputs.links]
    means = [mean_rtt_to_others(triples, name) for name in region_names]
    return [
        Output(
            "failover RTT, worst region",
            max(means),
            "ms",
            "max over regions of the mean RTT to the other four",
        ),
        Output(
            "failover RTT, best region",
            min(means),
            "ms",
            "min over regions of the mean RTT to the other four",
        ),
    ]


def by_name(outputs: list[Output]) -> dict[str, float]:
    return {output.name: output.value for output in outputs}
