"""Keeps ARCHITECTURE.md and the decision records true to the repository.

- Every ``##`` section of ARCHITECTURE.md ends with a paragraph that starts with ``Here:`` (and
  links code or tests) or ``Design only`` (and says why).
- Every relative link in ARCHITECTURE.md and docs/adr/*.md names a file or folder that exists,
  and a ``#fragment`` into a Markdown file names one of its headings.
- Every figure in the capacity section is the model's: each row of its ``model row`` tables has
  the name, value and unit of a row of docs/capacity.md, and every other number in the section
  is a value of that table. docs/capacity.md is the model's output table; the capacity tool's
  own test (tools/capacity/tests/test_report.py) fails when it differs from what the model
  computes, so the two tests together tie this document to the model.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ARCHITECTURE = ROOT / "ARCHITECTURE.md"
CAPACITY = ROOT / "docs" / "capacity.md"
ADRS = sorted((ROOT / "docs" / "adr").glob("*.md"))
CAPACITY_SECTION = "Capacity estimates"

LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
NUMBER = re.compile(r"(?<![\w.])\d[\d,]*(?:\.\d+)?(?![\w])")
FENCE = "```"


@dataclass(frozen=True, slots=True)
class Section:
    title: str
    lines: list[str]  # outside code fences, without the heading

    def paragraphs(self) -> list[str]:
        blocks: list[list[str]] = [[]]
        for line in self.lines:
            if line.strip():
                blocks[-1].append(line.strip())
            elif blocks[-1]:
                blocks.append([])
        return [" ".join(block) for block in blocks if block]


def prose_lines(text: str) -> list[str]:
    """The lines of a Markdown text outside fenced code blocks (Mermaid included)."""
    lines: list[str] = []
    fenced = False
    for line in text.splitlines():
        if line.lstrip().startswith(FENCE):
            fenced = not fenced
            continue
        if not fenced:
            lines.append(line)
    return lines


def sections(text: str) -> list[Section]:
    found: list[Section] = []
    for line in prose_lines(text):
        if line.startswith("## "):
            found.append(Section(line[3:].strip(), []))
        elif found:
            found[-1].lines.append(line)
    return found


def slug(heading: str) -> str:
    """The anchor GitHub gives a heading."""
    text = heading.strip().lower().replace("`", "")
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    return {
        slug(line.lstrip("#"))
        for line in prose_lines(path.read_text(encoding="utf-8"))
        if line.startswith("#")
    }


def relative_links(path: Path) -> list[str]:
    text = "\n".join(prose_lines(path.read_text(encoding="utf-8")))
    return [
        target
        for target in LINK.findall(text)
        if "://" not in target and not target.startswith(("mailto:", "#"))
    ]


def table_rows(lines: list[str]) -> list[list[str]]:
    """Cells of every Markdown table row, header and separator rows included."""
    return [
        [cell.strip() for cell in line.strip().strip("|").split("|")]
        for line in lines
        if line.strip().startswith("|")
    ]


def model_table() -> dict[str, tuple[str, str]]:
    """docs/capacity.md's table: figure -> (value as printed, unit)."""
    (inputs_and_outputs,) = (
        section
        for section in sections(CAPACITY.read_text(encoding="utf-8"))
        if section.title == "Inputs and outputs"
    )
    rows = table_rows(inputs_and_outputs.lines)
    assert rows[0] == ["figure", "value", "unit", "kind", "source or formula"]
    return {row[0]: (row[1], row[2]) for row in rows[2:]}


def capacity_section() -> Section:
    (section,) = (
        s for s in sections(ARCHITECTURE.read_text(encoding="utf-8")) if s.title == CAPACITY_SECTION
    )
    return section


def test_the_document_has_its_sections() -> None:
    titles = [section.title for section in sections(ARCHITECTURE.read_text(encoding="utf-8"))]
    assert CAPACITY_SECTION in titles
    assert len(titles) == len(set(titles)), "a section title appears twice"


@pytest.mark.parametrize(
    "section", sections(ARCHITECTURE.read_text(encoding="utf-8")), ids=lambda s: s.title
)
def test_every_section_ends_with_here_or_design_only(section: Section) -> None:
    last = section.paragraphs()[-1]
    if last.startswith("Here:"):
        assert LINK.search(last), f"{section.title}: its Here: line links nothing"
    else:
        assert last.startswith("Design only"), (
            f"{section.title}: ends with {last[:60]!r}, not a Here: or Design only line"
        )
        assert len(last.split()) > 3, f"{section.title}: Design only without a reason"


@pytest.mark.parametrize("document", [ARCHITECTURE, *ADRS], ids=lambda p: p.name)
def test_every_relative_link_resolves(document: Path) -> None:
    broken: list[str] = []
    for target in relative_links(document):
        path_part, _, fragment = target.partition("#")
        resolved = (document.parent / path_part).resolve()
        if not resolved.exists():
            broken.append(f"{target}: no such file")
        elif fragment and resolved.suffix == ".md" and fragment not in anchors(resolved):
            broken.append(f"{target}: no heading #{fragment}")
    print(f"{document.relative_to(ROOT)}: {len(broken)} broken link(s)", *broken, sep="\n  ")
    assert not broken, f"{document.relative_to(ROOT)}: {broken}"


def test_every_adr_has_status_context_decision_and_consequences() -> None:
    for adr in ADRS:
        text = adr.read_text(encoding="utf-8")
        assert re.match(r"# \d+\. ", text), adr.name
        for part in ("\nStatus: ", "\n## Context\n", "\n## Decision\n", "\n## Consequences\n"):
            assert part in text, f"{adr.name} lacks {part.strip()!r}"


def test_capacity_tables_quote_the_model() -> None:
    model = model_table()
    quoted = [row for row in table_rows(capacity_section().lines) if row[0] not in {"model row"}]
    figures = [row for row in quoted if not set(row[0]) <= {"-", ":"}]
    assert figures, "the capacity section has no model row tables"
    for name, value, unit in figures:
        assert name in model, f"{name!r} is not a row of docs/capacity.md"
        assert (value, unit) == model[name], f"{name}: {value} {unit}, model says {model[name]}"


def citing_units(section: Section) -> list[str]:
    """Paragraphs and table rows of a section that link docs/capacity.md, link targets removed."""
    units: list[str] = []
    prose: list[str] = []
    for line in [*section.lines, ""]:
        if line.strip().startswith("|"):
            units.append(line)
        elif line.strip():
            prose.append(line)
        else:
            units.append(" ".join(prose))
            prose = []
    citing = [unit for unit in units if "docs/capacity.md" in unit]
    return [LINK.sub("]", unit) for unit in citing]


def test_model_figures_in_other_sections_are_the_models() -> None:
    """A paragraph or table row elsewhere that cites docs/capacity.md uses only its values."""
    values = {value for value, _ in model_table().values()}
    strays: list[str] = []
    for section in sections(ARCHITECTURE.read_text(encoding="utf-8")):
        if section.title == CAPACITY_SECTION:
            continue
        for unit in citing_units(section):
            strays += [
                f"{section.title}: {number}"
                for number in NUMBER.findall(unit)
                if number not in values
            ]
    assert not strays, f"numbers beside a docs/capacity.md link that it does not output: {strays}"


def test_every_number_in_the_capacity_prose_is_a_model_value() -> None:
    values = {value for value, _ in model_table().values()}
    prose = [line for line in capacity_section().lines if not line.strip().startswith("|")]
    strays = {number for number in NUMBER.findall("\n".join(prose)) if number not in values}
    assert not strays, f"numbers in the capacity section that the model does not output: {strays}"
