"""The chaos table: one row per fault, and whether the run kept every promise."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from terrascale.chaos.oracle import Verdict


@dataclass(frozen=True, slots=True)
class Row:
    fault: str
    verdict: Verdict
    writes_failed_seconds: float | None  # None: the fault is not meant to stop writes
    recovery_seconds: float | None  # heal -> first acknowledged write; None: none came
    caught_up_seconds: float | None  # heal -> every consumer group had nothing left to do
    reads: tuple[int, int]  # home-timeline reads answered 200, and not


HEADER = (
    "fault",
    "posts",
    "requests sent",
    "acknowledged",
    "given up",
    "lost",
    "duplicated",
    "writes failed for",
    "recovery",
    "events caught up",
    "reads ok / failed",
)


def _seconds(value: float | None, *, missing: str) -> str:
    return missing if value is None else f"{value:.2f} s"


def cells(row: Row) -> tuple[str, ...]:
    verdict = row.verdict
    return (
        row.fault,
        str(verdict.posts),
        str(verdict.requests),
        str(verdict.acknowledged),
        str(verdict.given_up),
        str(verdict.lost),
        str(verdict.duplicated),
        _seconds(row.writes_failed_seconds, missing="-"),
        _seconds(row.recovery_seconds, missing="never"),
        _seconds(row.caught_up_seconds, missing="not within the wait"),
        f"{row.reads[0]} / {row.reads[1]}",
    )


def markdown_table(rows: Sequence[Row]) -> str:
    lines = [
        "| " + " | ".join(HEADER) + " |",
        "|" + "|".join("---" if i == 0 else "---:" for i in range(len(HEADER))) + "|",
    ]
    lines += ["| " + " | ".join(cells(row)) + " |" for row in rows]
    return "\n".join(lines)


def breakdown(rows: Sequence[Row]) -> list[str]:
    """One line per row that lost or duplicated anything: which promise, and examples."""
    lines: list[str] = []
    for row in rows:
        verdict = row.verdict
        if not verdict.lost and not verdict.duplicated:
            continue
        lines.append(
            f"{row.fault}: lost {verdict.lost_posts} posts, "
            f"{verdict.missing_timeline_entries} timeline entries, "
            f"{verdict.missing_notifications} notifications; duplicated "
            f"{verdict.duplicated_posts} posts, {verdict.duplicated_timeline_entries} "
            f"timeline entries, {verdict.duplicated_notifications} notifications"
        )
        lines += [f"  e.g. {example}" for example in verdict.examples]
    return lines


def failures(rows: Sequence[Row]) -> list[str]:
    """Why the run fails (empty: every promise held)."""
    found: list[str] = []
    for row in rows:
        if row.verdict.lost:
            found.append(f"{row.fault}: {row.verdict.lost} lost")
        if row.verdict.duplicated:
            found.append(f"{row.fault}: {row.verdict.duplicated} duplicated")
        if row.recovery_seconds is None:
            found.append(f"{row.fault}: no write was acknowledged after the fault was healed")
        if row.verdict.acknowledged == 0:
            found.append(f"{row.fault}: no write was acknowledged at all")
    return found
