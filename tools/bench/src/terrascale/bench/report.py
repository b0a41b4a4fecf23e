"""The results of a run: a Markdown report, the raw figures as JSON, and latency plots (PNG)."""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib as mpl

mpl.use("Agg")  # files only, no display
import matplotlib.pyplot as plt

from terrascale.bench.ceilings import StorageCeiling
from terrascale.bench.load import PERCENTILES, RunResult


@dataclass(frozen=True, slots=True)
class Target:
    what: str
    goal: str
    measured: str
    met: bool | None  # None: not measured in this run


@dataclass
class Report:
    command: str
    graph: str
    settings: dict[str, str]
    framework_runs: dict[str, RunResult] = field(default_factory=dict[str, RunResult])
    storage: list[StorageCeiling] = field(default_factory=list[StorageCeiling])
    seeding: dict[str, float] = field(default_factory=dict[str, float])
    maximum: dict[str, RunResult] = field(default_factory=dict[str, RunResult])
    sweeps: dict[str, list[RunResult]] = field(default_factory=dict[str, list[RunResult]])
    extra: dict[str, str] = field(default_factory=dict[str, str])
    targets: list[Target] = field(default_factory=list[Target])

    def framework_rate(self, operation: str) -> float | None:
        """The bare endpoint's rate measured just before ``operation``'s maximum."""
        run = self.framework_runs.get(operation)
        return run.achieved_rate if run else None


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = ""
    try:
        kib = int(Path("/proc/meminfo").read_text().split()[1])
        memory = f", {kib / 2**20:.0f} GiB"
    except (OSError, ValueError, IndexError):
        pass
    return (
        f"{os.cpu_count()} CPUs ({cpu}){memory}, {platform.system()} {platform.release()}, "
        f"Python {platform.python_version()}"
    )


def revision(repo: Path) -> str:
    try:
        return subprocess.run(
            ["git", "-C", str(repo), "describe", "--always", "--dirty"],  # noqa: S607
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def _ms(value: float) -> str:
    return f"{value:.1f}" if value >= 10 else f"{value:.2f}"  # noqa: PLR2004


def _errors(run: RunResult) -> str:
    if not run.errors:
        return "0"
    kinds = Counter[str]()
    for operation in run.operations.values():
        kinds.update(operation.errors)
    if run.timeouts:
        kinds["timeout"] += run.timeouts
    return f"{run.errors} (" + ", ".join(f"{k}: {n}" for k, n in sorted(kinds.items())) + ")"


def latency_row(label: str, run: RunResult, framework_rate: float | None) -> str:
    overall = run.overall()
    offered = f"{run.offered_rate:,.0f}" if run.offered_rate else f"closed, {run.concurrency}"
    ratio = f"{run.achieved_rate / framework_rate:.3f}" if framework_rate else "-"
    cells = [
        label,
        offered,
        f"{run.achieved_rate:,.0f}",
        ratio,
        *(_ms(overall.percentile_ms(p)) for p in PERCENTILES),
        _ms(overall.max_ms),
        _errors(run),
    ]
    return "| " + " | ".join(cells) + " |"


LATENCY_HEADER = (
    "| operation | offered req/s | achieved req/s | / framework | p50 ms | p90 ms | p99 ms "
    "| p99.9 ms | max ms | errors |\n"
    "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|"
)


def per_operation_rows(run: RunResult) -> list[str]:
    rows: list[str] = []
    for name, op in sorted(run.operations.items()):
        cells = [
            name,
            f"{op.latency.count / run.seconds:,.0f}" if run.seconds else "-",
            *(_ms(op.latency.percentile_ms(p)) for p in PERCENTILES),
            _ms(op.latency.max_ms),
            str(op.error_count),
        ]
        rows.append("| " + " | ".join(cells) + " |")
    return rows


def plot(report: Report, directory: Path) -> list[Path]:
    """One PNG per operation: p50/p99/p99.9 latency against the offered rate."""
    paths: list[Path] = []
    for operation, runs in report.sweeps.items():
        if not runs:
            continue
        figure, axes = plt.subplots(figsize=(7, 4.5))
        offered = [run.offered_rate or 0 for run in runs]
        for percentile, style in ((50.0, "o-"), (99.0, "s-"), (99.9, "^-")):
            values = [run.overall().percentile_ms(percentile) for run in runs]
            axes.plot(offered, values, style, label=f"p{percentile:g}")
        axes.set_xlabel("offered load, requests/s (open loop, exponential arrivals)")
        axes.set_ylabel("latency from intended send time, ms")
        axes.set_yscale("log")
        axes.set_title(f"{operation} on {report.graph}")
        axes.grid(visible=True, which="both", alpha=0.3)
        axes.legend()
        figure.tight_layout()
        path = directory / f"latency-{operation}.png"
        figure.savefig(path, dpi=110)
        plt.close(figure)
        paths.append(path)
    return paths


def markdown(report: Report, plots: Sequence[Path], repo: Path) -> str:
    lines = [
        f"# Load harness: DeathStarBench social-network workload on {report.graph}",
        "",
        f"- command: `{report.command}`",
        f"- revision: {revision(repo)}",
        f"- machine: {machine()}",
        *(f"- {name}: {value}" for name, value in report.settings.items()),
        "",
        "## Ceilings, same run",
        "",
        "| what | rate | how |",
        "|---|---:|---|",
    ]
    bare_runs = list(report.framework_runs.values())
    if bare_runs:
        rates = [run.achieved_rate for run in bare_runs]
        cpu = statistics.median(run.generator_us_per_request for run in bare_runs)
        lines += [
            f"| bare FastAPI endpoint (framework ceiling) | {statistics.median(rates):,.0f} req/s "
            f"| closed loop, {bare_runs[0].concurrency} connections, same server settings; "
            f"median of {len(rates)} runs ({min(rates):,.0f}-{max(rates):,.0f}), one before "
            "each operation |",
            f"| load generator's own CPU | {cpu:.0f} µs/request | one core of it drives about "
            f"{1e6 / max(cpu, 1):,.0f} req/s |",
        ]
    for ceiling in report.storage:
        rate = f"{ceiling.rate:,.0f} /s" if ceiling.rate else "not measured (tool missing)"
        lines.append(f"| {ceiling.name} | {rate} | `{ceiling.command}` |")
    if report.seeding:
        lines += ["", "## Seeding", "", "| step | seconds |", "|---|---:|"]
        lines += [f"| {step} | {seconds:.1f} |" for step, seconds in report.seeding.items()]
    lines += ["", "## Maximum throughput (closed loop)", "", LATENCY_HEADER]
    lines += [
        latency_row(operation, run, report.framework_rate(operation))
        for operation, run in report.maximum.items()
    ]
    for operation, runs in report.sweeps.items():
        lines += ["", f"## {operation}: open loop", "", LATENCY_HEADER]
        lines += [latency_row(operation, run, report.framework_rate(operation)) for run in runs]
        mixed = [run for run in runs if len(run.operations) > 1]
        if mixed:
            busiest = max(mixed, key=lambda run: run.offered_rate or 0)
            lines += [
                "",
                f"Per operation at {busiest.offered_rate:,.0f} req/s offered:",
                "",
                "| operation | req/s | p50 ms | p90 ms | p99 ms | p99.9 ms | max ms | errors |",
                "|---|---:|---:|---:|---:|---:|---:|---:|",
                *per_operation_rows(busiest),
            ]
    if report.extra:
        lines += ["", "## Other measurements", "", "| what | figure |", "|---|---|"]
        lines += [f"| {what} | {figure} |" for what, figure in report.extra.items()]
    if report.targets:
        lines += ["", "## Targets", "", "| target | goal | measured | met |", "|---|---|---|---|"]
        for target in report.targets:
            met = {True: "yes", False: "**no**", None: "not measured"}[target.met]
            lines.append(f"| {target.what} | {target.goal} | {target.measured} | {met} |")
    if plots:
        lines += ["", "## Plots", ""]
        lines += [f"![{path.stem}]({path.name})" for path in plots]
    return "\n".join(lines) + "\n"


def raw(report: Report) -> str:
    def figures(run: RunResult) -> dict[str, object]:
        overall = run.overall()
        return {
            "mode": run.mode,
            "offered_rate": run.offered_rate,
            "concurrency": run.concurrency,
            "seconds": run.seconds,
            "sent": run.sent,
            "completed": run.completed,
            "errors": run.errors,
            "achieved_rate": run.achieved_rate,
            "generator_us_per_request": run.generator_us_per_request,
            "latency_ms": {f"p{p:g}": overall.percentile_ms(p) for p in PERCENTILES}
            | {"max": overall.max_ms},
        }

    data = {
        "command": report.command,
        "graph": report.graph,
        "settings": report.settings,
        "framework": {name: figures(run) for name, run in report.framework_runs.items()},
        "storage": [{"name": c.name, "rate": c.rate, "command": c.command} for c in report.storage],
        "seeding_seconds": report.seeding,
        "maximum": {name: figures(run) for name, run in report.maximum.items()},
        "sweeps": {name: [figures(run) for run in runs] for name, runs in report.sweeps.items()},
        "extra": report.extra,
        "targets": [
            {"what": t.what, "goal": t.goal, "measured": t.measured, "met": t.met}
            for t in report.targets
        ],
    }
    return json.dumps(data, indent=2)
