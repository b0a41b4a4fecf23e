#!/usr/bin/env python3
"""Developer entry point that needs nothing but Python 3.11+.

    python3 dev.py up      start every service on embedded PostgreSQL and Valkey (Ctrl-C stops)
    python3 dev.py test    run the test suite (coverage threshold included)
    python3 dev.py check   lint, format check, type check and import contracts
    python3 dev.py bench   the load harness (DeathStarBench's workload; --quick, --help)
    python3 dev.py chaos   the fault-test harness: faults under load, then an oracle (--quick)
    python3 dev.py regions two regions with replicators (ports 5300-5334); `regions figures`
                           measures replication lag and outage catch-up

It finds uv (or installs it into .tools/), installs the locked dependencies, then runs the command.
Extra arguments are passed on, e.g. ``python3 dev.py test -k cache``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
UV_VERSION = "0.13.9"
TOOLS = ROOT / ".tools"

COMMANDS: dict[str, list[list[str]]] = {
    "up": [["terrascale", "up"]],
    "test": [["pytest"]],
    "bench": [["terrascale-bench"]],
    "chaos": [["terrascale-chaos"]],
    "regions": [["terrascale-regions"]],
    "check": [
        ["ruff", "check", "."],
        ["ruff", "format", "--check", "."],
        ["pyright"],
        ["lint-imports"],
    ],
}


def find_uv() -> str:
    if found := shutil.which("uv"):
        return found
    local = TOOLS / "uv-venv" / ("Scripts" if os.name == "nt" else "bin")
    uv = local / ("uv.exe" if os.name == "nt" else "uv")
    if not uv.exists():
        print(f"dev.py: installing uv {UV_VERSION} into {TOOLS}", flush=True)
        venv.create(TOOLS / "uv-venv", with_pip=True)
        python = local / ("python.exe" if os.name == "nt" else "python")
        subprocess.run(
            [str(python), "-m", "pip", "install", "--quiet", f"uv=={UV_VERSION}"], check=True
        )
    return str(uv)


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in COMMANDS:
        print(__doc__)
        return 2
    name, extra = argv[0], argv[1:]
    uv = find_uv()
    subprocess.run([uv, "sync", "--frozen", "--all-packages", "--quiet"], cwd=ROOT, check=True)
    steps = COMMANDS[name]
    for step in steps[:-1]:
        if subprocess.run([uv, "run", "--frozen", *step], cwd=ROOT, check=False).returncode:
            return 1
    last = [uv, "run", "--frozen", *steps[-1], *extra]
    if name in ("up", "regions"):
        # Hand over the process so Ctrl-C goes straight to the launcher.
        os.chdir(ROOT)
        os.execv(uv, last)
    return subprocess.run(last, cwd=ROOT, check=False).returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
