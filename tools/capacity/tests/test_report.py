from pathlib import Path

import pytest

from terrascale.capacity import cli
from terrascale.capacity.report import (
    COMMAND,
    Capacity,
    Row,
    compute,
    format_value,
    markdown,
    markdown_table,
    rows,
)

DOCS = Path(__file__).resolve().parents[3] / "docs"


@pytest.fixture(scope="module")
def capacity() -> Capacity:
    return compute()


def test_format_value() -> None:
    assert format_value(918) == "918"
    assert format_value(1_250_000) == "1,250,000"
    assert format_value(578_703.7) == "578,704"
    assert format_value(11.4) == "11.40"
    assert format_value(0.6) == "0.600"


def test_markdown_table_has_one_row_per_figure() -> None:
    table = markdown_table([Row("rate", 1234.5, "req/s", "measured", "RESULTS.md")])
    assert table.splitlines() == [
        "| figure | value | unit | kind | source or formula |",
        "|---|---:|---|---|---|",
        "| rate | 1,234 | req/s | measured | RESULTS.md |",
    ]


def test_every_row_has_a_unit_and_a_source(capacity: Capacity) -> None:
    table = rows(capacity)
    assert {row.kind for row in table} == {
        "measured",
        "repo setting",
        "assumed",
        "computed",
        "simulated",
    }
    for row in table:
        assert row.unit
        assert row.source


def test_failover_is_slower_than_normal(capacity: Capacity) -> None:
    assert capacity.failover.utilisation == pytest.approx(capacity.normal.utilisation * 1.25)
    assert capacity.failover.p99_ms > capacity.normal.p99_ms


def test_the_committed_document_matches_the_model(capacity: Capacity) -> None:
    committed = (DOCS / "capacity.md").read_text(encoding="utf-8")
    assert committed == markdown(capacity), f"docs/capacity.md is stale: run `{COMMAND}`"


def test_the_committed_plots_exist() -> None:
    for name in ("nodes-per-tier.png", "p99-vs-load.png", "redis-memory.png"):
        assert (DOCS / "capacity" / name).stat().st_size > 0


def test_the_command_writes_the_document_and_the_plots(
    tmp_path: Path, capacity: Capacity, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cli, "compute", lambda: capacity)  # computed once for the module
    cli.main(["--out", str(tmp_path)])
    assert (tmp_path / "capacity.md").read_text(encoding="utf-8").startswith("# Capacity model")
    assert sorted(path.name for path in (tmp_path / "capacity").iterdir()) == [
        "nodes-per-tier.png",
        "p99-vs-load.png",
        "redis-memory.png",
    ]
