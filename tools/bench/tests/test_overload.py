"""The overload report's arithmetic: what counts as shed, and the soak's per-window summary."""

from __future__ import annotations

from terrascale.bench.load import RunResult
from terrascale.bench.overload import other_errors, shed, soak_summary


def run_with(latencies_us: list[int], errors: dict[str, int], timeouts: int = 0) -> RunResult:
    run = RunResult("open", 100.0, 8, seconds=1.0, timeouts=timeouts)
    operation = run.operation("read")
    for latency in latencies_us:
        operation.latency.record(latency)
    operation.errors.update(errors)
    return run


def test_only_503s_count_as_shed_and_everything_else_as_other_errors() -> None:
    run = run_with([1000], {"503": 7, "500": 2, "ConnectionResetError": 1}, timeouts=3)
    assert shed(run) == 7
    assert other_errors(run) == 6


def test_soak_summary_lists_each_window_and_the_memory_change() -> None:
    windows = [
        (run_with([2000] * 100, {}), 100.0),
        (run_with([3000] * 100, {"500": 1}), 104.0),
    ]
    summary = soak_summary(windows)
    assert summary.startswith("2.0 ms/0 err/100 MiB; 3.0 ms/1 err/104 MiB")
    assert summary.endswith("(memory +4 MiB first to last)")
