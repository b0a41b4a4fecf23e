"""The chaos table and the verdict on the run."""

from __future__ import annotations

from terrascale.chaos.oracle import Verdict
from terrascale.chaos.report import Row, breakdown, failures, markdown_table


def row(fault: str, verdict: Verdict, *, recovery: float | None = 0.12) -> Row:
    return Row(
        fault=fault,
        verdict=verdict,
        writes_failed_seconds=0.0,
        recovery_seconds=recovery,
        caught_up_seconds=None,
        reads=(40, 2),
    )


def clean() -> Verdict:
    return Verdict(posts=10, requests=12, acknowledged=10)


def test_table_has_one_row_per_fault_with_every_figure() -> None:
    table = markdown_table([row("kill redis", clean())])
    header, rule, line = table.splitlines()
    assert header.startswith("| fault | posts | requests sent | acknowledged | given up | lost |")
    assert rule.count("---") == header.count("|") - 1
    assert line == (
        "| kill redis | 10 | 12 | 10 | 0 | 0 | 0 | 0.00 s | 0.12 s | not within the wait | 40 / 2 |"
    )


def test_a_clean_run_has_no_failures_and_no_breakdown() -> None:
    rows = [row("a", clean()), row("b", clean())]
    assert failures(rows) == []
    assert breakdown(rows) == []


def test_losses_duplicates_and_no_recovery_fail_the_run() -> None:
    lossy = Verdict(posts=3, acknowledged=3, missing_timeline_entries=2, duplicated_posts=1)
    lossy.note("post 7 missing from the timeline of 9")
    rows = [row("kill redis", lossy), row("kill post service", clean(), recovery=None)]
    assert failures(rows) == [
        "kill redis: 2 lost",
        "kill redis: 1 duplicated",
        "kill post service: no write was acknowledged after the fault was healed",
    ]
    lines = breakdown(rows)
    assert lines[0].startswith("kill redis: lost 0 posts, 2 timeline entries, 0 notifications")
    assert lines[1] == "  e.g. post 7 missing from the timeline of 9"
    assert "never" in markdown_table(rows)


def test_a_fault_with_no_acknowledged_write_fails() -> None:
    assert failures([row("a", Verdict(posts=2, given_up=2))]) == [
        "a: no write was acknowledged at all"
    ]
