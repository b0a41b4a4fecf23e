"""The report of a run: Markdown tables, raw JSON and PNG plots from real histograms."""

from __future__ import annotations

import json
from pathlib import Path

from terrascale.bench.ceilings import StorageCeiling
from terrascale.bench.load import RunResult
from terrascale.bench.report import Report, Target, markdown, plot, raw


def run(offered: float | None, latencies_us: list[int], operation: str = "op") -> RunResult:
    result = RunResult("open" if offered else "closed", offered, 8, seconds=1.0)
    for latency in latencies_us:
        result.operation(operation).latency.record(latency)
    result.operation(operation).errors["503"] += 1
    result.sent = len(latencies_us) + 1
    return result


def test_a_report_has_every_table_and_a_plot_per_operation(tmp_path: Path) -> None:
    report = Report(command="terrascale-bench --quick", graph="g", settings={"graph": "g: 3 users"})
    report.framework_runs["op"] = run(None, [1_000] * 4_000, "bare")
    report.storage.append(StorageCeiling("Redis GET, pipeline 1", 90_000.0, "redis-benchmark"))
    report.storage.append(StorageCeiling("pgbench", None, "pgbench -S"))
    report.maximum["op"] = run(None, [5_000] * 1_000)
    report.sweeps["op"] = [run(250, [2_000] * 250), run(500, [3_000] * 490 + [90_000] * 10)]
    report.targets.append(Target("op ratio", ">= 30%", "25%", met=False))

    plots = plot(report, tmp_path)
    text = markdown(report, plots, tmp_path)

    assert [path.name for path in plots] == ["latency-op.png"]
    assert plots[0].read_bytes().startswith(b"\x89PNG")
    assert "| bare FastAPI endpoint (framework ceiling) | 4,000 req/s |" in text
    assert "| op | closed, 8 | 1,000 | 0.250 |" in text  # ratio to the bare run before it
    assert "| op | 500 | 500 | 0.125 | 3.00 |" in text  # p50 of the open-loop run
    assert "1 (503: 1)" in text
    assert "not measured (tool missing)" in text
    assert "| op ratio | >= 30% | 25% | **no** |" in text
    data = json.loads(raw(report))
    assert data["sweeps"]["op"][1]["latency_ms"]["p99"] >= 90
