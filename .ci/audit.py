"""Audit the locked dependencies for known vulnerabilities (pip-audit, PyPI's advisory data).

Fails on a vulnerability that has a fixed version, unless `.ci/audit-ignore.txt` lists its id
with a reason; one without a fix is reported and does not fail (nothing to upgrade to). When the
advisory service answers for too few packages (a mirror without per-release data, no network),
it says so and passes: an audit that could not run is not a clean one, and is not reported as one.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
IGNORES = ROOT / ".ci" / "audit-ignore.txt"
# Below this share of packages audited, the service is not really answering.
MIN_AUDITED_SHARE = 0.9


def ignored_ids() -> dict[str, str]:
    """Vulnerability id -> reason, from lines `ID  reason...` (# starts a comment)."""
    found: dict[str, str] = {}
    for line in IGNORES.read_text().splitlines():
        text = line.split("#", 1)[0].strip()
        if text:
            vuln_id, _, reason = text.partition(" ")
            if not reason.strip():
                raise SystemExit(f"audit: {IGNORES.name}: {vuln_id} needs a reason")
            found[vuln_id] = reason.strip()
    return found


def main() -> int:
    requirements = subprocess.run(
        [
            *("uv", "export", "--frozen", "--all-packages", "--format", "requirements-txt"),
            *("--no-hashes", "--no-emit-workspace", "--no-header", "--no-annotate"),
        ],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    with tempfile.NamedTemporaryFile("w", suffix=".txt") as pinned:
        pinned.write(requirements)
        pinned.flush()
        # --no-deps: the export pins every package already; pip would resolve it again.
        result = subprocess.run(
            [
                *("uv", "run", "--frozen", "pip-audit", "--requirement", pinned.name),
                *("--disable-pip", "--no-deps", "--format", "json", "--progress-spinner", "off"),
            ],
            check=False,  # exit 1 means "found something": the JSON says what
            cwd=ROOT,
            capture_output=True,
            text=True,
        )
    if not result.stdout.strip():
        print(result.stderr, file=sys.stderr)
        raise SystemExit(f"audit: pip-audit failed (exit {result.returncode})")
    packages = json.loads(result.stdout)["dependencies"]
    audited = [package for package in packages if "skip_reason" not in package]
    if len(audited) < MIN_AUDITED_SHARE * len(packages):
        print(
            f"audit: NOT RUN: the advisory service answered for {len(audited)} of "
            f"{len(packages)} packages (first refusal: "
            f"{next((p['skip_reason'] for p in packages if 'skip_reason' in p), 'none')})"
        )
        return 0

    ignores = ignored_ids()
    failing: list[str] = []
    for package in audited:
        for vuln in package["vulns"]:
            line = f"{package['name']} {package['version']}: {vuln['id']}"
            if vuln["id"] in ignores or set(vuln.get("aliases", [])) & ignores.keys():
                print(f"audit: ignored {line} ({ignores.get(vuln['id'], 'alias ignored')})")
            elif vuln["fix_versions"]:
                failing.append(f"{line}, fixed in {', '.join(vuln['fix_versions'])}")
            else:
                print(f"audit: no fix yet for {line}")
    for line in failing:
        print(f"audit: VULNERABLE {line}")
    print(f"audit: {len(audited)} packages audited, {len(failing)} fixable vulnerabilities")
    return 1 if failing else 0


if __name__ == "__main__":
    sys.exit(main())
