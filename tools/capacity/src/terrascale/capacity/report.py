"""Runs the model and the simulation, and renders them as one Markdown table and PNG plots."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import matplotlib as mpl

mpl.use("Agg")  # files only, no display
import matplotlib.pyplot as plt

from terrascale.capacity.inputs import Inputs
from terrascale.capacity.model import (
    TIB,
    Output,
    by_name,
    project,
    timeline_memory_bytes,
)
from terrascale.capacity.simulation import (
    SimulationResult,
    lognormal_sigma_from_quantiles,
    simulate_node,
)

COMMAND = "uv run --frozen terrascale-capacity --out docs"
SEED = 1
SWEEP_UTILISATIONS = (0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.85, 0.9)
TIERS = (
    "home timeline",
    "user timeline",
    "post write",
    "fan-out worker",
    "notification worker",
    "user/profile",
    "graph",
    "timeline Redis (fan-out)",
    "timeline Redis (home-read round trips)",
    "timeline Redis (memory)",
    "PostgreSQL shard",
)


@dataclass(frozen=True, slots=True)
class Row:
    name: str
    value: float
    unit: str
    kind: str
    source: str


@dataclass(frozen=True, slots=True)
class Capacity:
    inputs: Inputs
    outputs: list[Output]
    normal: SimulationResult
    failover: SimulationResult
    light_load: SimulationResult
    sweep: list[SimulationResult]


def compute(inputs: Inputs | None = None) -> Capacity:
    inputs = inputs or Inputs()
    outputs = project(inputs)
    values = by_name(outputs)
    regions = inputs.regions.value
    per_node_max = inputs.home_timeline_rps_per_node.value
    workers = int(inputs.workers_per_node.value)
    mean_service_s = workers / per_node_max  # the measured maximum is what the CPUs allow
    sigma = lognormal_sigma_from_quantiles(
        inputs.home_timeline_p50_ms_light_load.value, inputs.home_timeline_p99_ms_light_load.value
    )
    normal_rate = (
        values["home timeline reads, peak"] / regions / values["home timeline nodes per region"]
    )

    def run(rate: float) -> SimulationResult:
        return simulate_node(rate, mean_service_s, workers, sigma=sigma, seed=SEED)

    return Capacity(
        inputs=inputs,
        outputs=outputs,
        normal=run(normal_rate),
        failover=run(normal_rate * inputs.failover_load_factor.value),
        light_load=run(0.25 * per_node_max),
        sweep=[run(utilisation * per_node_max) for utilisation in SWEEP_UTILISATIONS],
    )


def rows(capacity: Capacity) -> list[Row]:
    table = [
        Row(name, figure.value, figure.unit, figure.kind, figure.source)
        for name, figure in [*capacity.inputs.figures(), *capacity.inputs.link_figures()]
    ]
    table += [
        Row(output.name, output.value, output.unit, "computed", output.formula)
        for output in capacity.outputs
    ]
    simulated = "simulated"
    fitted = "SimPy, one node, 2 workers, lognormal service fitted to the measured p50/p99"
    values = by_name(capacity.outputs)
    worst_rtt = values["failover RTT, worst region"]
    table += [
        Row(
            "home read p99 at 25% load (check)",
            capacity.light_load.p99_ms,
            "ms",
            simulated,
            f"{fitted}; measured 11.4 ms includes I/O waits the model leaves out",
        ),
        Row(
            "home node utilisation, peak",
            capacity.normal.utilisation,
            "of 918 req/s",
            "computed",
            "home peak / regions / nodes / 918",
        ),
        Row("home read p50, peak", capacity.normal.p50_ms, "ms", simulated, fitted),
        Row("home read p99, peak", capacity.normal.p99_ms, "ms", simulated, fitted),
        Row(
            "home node utilisation, failover",
            capacity.failover.utilisation,
            "of 918 req/s",
            "computed",
            "peak utilisation x failover_load_factor",
        ),
        Row("home read p99, failover", capacity.failover.p99_ms, "ms", simulated, fitted),
        Row(
            "home read p99, failover, displaced user (worst region)",
            capacity.failover.p99_ms + worst_rtt,
            "ms",
            "computed",
            "p99 at failover + worst mean RTT (network otherwise ignored)",
        ),
    ]
    return table


WHOLE_NUMBER_FROM = 100  # above this, decimals are noise


def format_value(value: float) -> str:
    """Whole numbers with thousands separators; two decimals from 1, three below."""
    if float(value).is_integer() or abs(value) >= WHOLE_NUMBER_FROM:
        return f"{value:,.0f}"
    if abs(value) >= 1:
        return f"{value:,.2f}"
    return f"{value:.3f}"


def markdown_table(table: list[Row]) -> str:
    lines = ["| figure | value | unit | kind | source or formula |", "|---|---:|---|---|---|"]
    lines += [
        f"| {row.name} | {format_value(row.value)} | {row.unit} | {row.kind} | {row.source} |"
        for row in table
    ]
    return "\n".join(lines) + "\n"


HEADER = f"""\
# Capacity model

The global design (five regions, 500M daily users) projected from the figures measured in this
repository. Generated; do not edit by hand. Reproduce the table and the plots with:

```bash
{COMMAND}
```

The code is `tools/capacity` (`terrascale.capacity`); a test fails when this file no longer
matches what the model computes.

"""

CAVEATS = """
## How to read it

- **Measured** figures come from one 2-vCPU KVM guest on which the load generator, all five
  services, their event workers, PostgreSQL and Valkey shared the two cores
  (`bench/RESULTS.md`). A node here is such a machine running one service. Per-node rates are
  therefore pessimistic for one service on its own machine, and noisy: `bench/README.md` says
  other work ran on the machine for part of the day.
- **Assumed** figures are workload assumptions (the issue's §3, Twitter's published 2013
  figures, and our own choices where nothing is published: celebrity post share, profile reads,
  follows per day, PostgreSQL efficiency factors, replicas, round-trip times). Change them in
  `tools/capacity/src/terrascale/capacity/inputs.py` and regenerate.
- **Computed** rows are closed-form (`model.py`); **simulated** rows are a SimPy run of one
  home-timeline node (`simulation.py`, seed 1): Poisson arrivals, two workers, FIFO, service
  times from a lognormal *fitted* to the measured p50/p99 at 25% load with its mean set by the
  measured maximum (2 workers / 918 req/s). Every node of a region sees the same load when the
  balancer picks at random.
- Sizing is per region (load split evenly over 5 regions) with 60% CPU headroom at the diurnal
  peak; when one region fails its users go to the other four (load x 1.25, about 75% busy).

## What the model leaves out

- The network inside a region, TLS, load balancers and the client: the simulation is CPU
  queueing only, so its p99 at 25% load is below the measured one, which includes I/O waits.
- GC pauses (`gc.freeze()` cut them, they are not zero), hot keys and hot partitions (a
  celebrity's post or a viral thread), skew between regions, and the time a failover takes.
- The fan-out worker's CPU is scaled linearly from socfb-Reed98's fan-out of 39 to 75 (part of
  it is per post, so this overstates it); the 96,080 inserts/s per Redis node is a lower bound
  from one author with 10,000 followers, not measured at 100,000.
- The read-time merge of celebrity posts is inside the measured home read on a graph without
  celebrities; a user following many celebrities costs more.
- PostgreSQL is sized against `pgbench -S` with assumed efficiency factors, not a measured write
  ceiling; replicas for reads, vacuum, backups and cross-region replication are not modelled.
- Twitter's 2013 record of 143,199 posts/s was a spike 25 times the average; the model sizes
  for the assumed diurnal peak (x2) and relies on the event streams to absorb spikes.
- Noise: every measured figure is one run (or a median of a few) on a shared 2-vCPU guest; the
  bare endpoint alone ranged 9,903-11,981 req/s in one run, so read per-node rates as +-10%.
- Timeline Redis is sized three ways (fan-out writes, home-read round trips, memory); a real
  cluster needs the largest of the three, not their sum. Memory dominates.
- Memory assumes every daily user keeps a full 800-entry timeline; real timelines are often
  shorter, while the 30-day TTL keeps monthly users too.

## Plots

![nodes per tier](capacity/nodes-per-tier.png)
![p99 against load](capacity/p99-vs-load.png)
![Redis memory](capacity/redis-memory.png)
"""


def markdown(capacity: Capacity) -> str:
    return HEADER + "## Inputs and outputs\n\n" + markdown_table(rows(capacity)) + CAVEATS


def plot(capacity: Capacity, directory: Path) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    values = by_name(capacity.outputs)
    paths: list[Path] = []

    nodes = [values[f"{tier} nodes, all regions"] for tier in TIERS]
    figure, axes = plt.subplots(figsize=(9, 5))
    axes.barh(list(TIERS), nodes)
    axes.invert_yaxis()
    axes.set_xlabel("nodes (2 vCPUs each), all 5 regions, 60% headroom at peak")
    axes.set_title("Nodes per tier")
    for index, count in enumerate(nodes):
        axes.annotate(f"{count:,.0f}", (count, index), xytext=(3, 0), textcoords="offset points")
    figure.tight_layout()
    paths.append(directory / "nodes-per-tier.png")
    figure.savefig(paths[-1], dpi=100)
    plt.close(figure)

    figure, axes = plt.subplots(figsize=(8, 5))
    axes.plot(
        [result.utilisation for result in capacity.sweep],
        [result.p99_ms for result in capacity.sweep],
        marker="o",
        label="simulated p99",
    )
    for result, label, colour in (
        (capacity.normal, "peak", "tab:green"),
        (capacity.failover, "failover x1.25", "tab:red"),
    ):
        axes.scatter([result.utilisation], [result.p99_ms], zorder=3, label=label, color=colour)
    axes.set_xlabel("home timeline node utilisation (of 918 req/s)")
    axes.set_ylabel("p99 response ms (CPU queueing only)")
    axes.set_title("Home timeline read p99 against load")
    axes.legend()
    figure.tight_layout()
    paths.append(directory / "p99-vs-load.png")
    figure.savefig(paths[-1], dpi=100)
    plt.close(figure)

    inputs = capacity.inputs
    fractions = [step / 10 for step in range(1, 11)]
    memory = [
        timeline_memory_bytes(
            inputs.daily_active_users.value * fraction,
            inputs.timeline_cap.value,
            inputs.timeline_entry_bytes.value,
            inputs.redis_replicas.value,
        )
        / TIB
        for fraction in fractions
    ]
    figure, axes = plt.subplots(figsize=(8, 5))
    axes.plot(fractions, memory, marker="o")
    axes.set_xlabel("fraction of 500M daily users with a timeline in Redis")
    axes.set_ylabel("TiB, all regions, primary + replica")
    axes.set_title("Home timeline memory (800 entries x 20.1 B)")
    figure.tight_layout()
    paths.append(directory / "redis-memory.png")
    figure.savefig(paths[-1], dpi=100)
    plt.close(figure)
    return paths


def write(capacity: Capacity, out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    document = out / "capacity.md"
    document.write_text(markdown(capacity), encoding="utf-8")
    return [document, *plot(capacity, out / "capacity")]
