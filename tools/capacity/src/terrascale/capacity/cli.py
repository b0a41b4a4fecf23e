"""``terrascale-capacity --out DIR``: writes DIR/capacity.md and DIR/capacity/*.png."""

from __future__ import annotations

import argparse
from pathlib import Path

from terrascale.capacity.report import compute, write


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, required=True, help="folder for capacity.md and plots")
    arguments = parser.parse_args(argv)
    for path in write(compute(), arguments.out):
        print(path)
