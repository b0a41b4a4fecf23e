"""End-to-end check of the README's start command, as a new user would run it.

Starts ``python3 dev.py up`` on a fresh data folder (embedded PostgreSQL and Valkey), waits for
the User Service, creates and reads a user, fuzzes the API with Schemathesis, then presses
Ctrl-C and checks that nothing it started is left running.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BASE = "http://127.0.0.1:5000"


def request(method: str, path: str, body: object = None) -> tuple[int, dict[str, object]]:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(
        BASE + path, data=data, method=method, headers={"content-type": "application/json"}
    )
    try:
        with urllib.request.urlopen(req, timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def wait_until_up(process: subprocess.Popen[bytes], timeout: float) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if process.poll() is not None:
            raise SystemExit("smoke: the start command exited early")
        try:
            if request("GET", "/ready")[0] == 200:
                return time.monotonic() - started
        except (urllib.error.URLError, ConnectionError):
            pass
        time.sleep(0.5)
    raise SystemExit("smoke: the service did not become ready")


def leftover_processes(marker: str) -> list[str]:
    found = subprocess.run(["ps", "-eo", "pid,args"], capture_output=True, text=True, check=True)
    return [line for line in found.stdout.splitlines() if marker in line]


def main() -> int:
    data_dir = Path(tempfile.mkdtemp(prefix="terrascale-smoke-"))
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith(("POSTGRES_", "REDIS_"))}
    env.pop("DATABASE_URL", None)
    process = subprocess.Popen(
        [sys.executable, "dev.py", "up", "--data-dir", str(data_dir)], cwd=ROOT, env=env
    )
    try:
        seconds = wait_until_up(process, timeout=120)
        print(f"smoke: ready {seconds:.1f}s after the start command", flush=True)
        status, created = request("POST", "/users/", {"username": "smoke_Tester"})
        assert status == 201, (status, created)
        user_path = f"/users/{created['id']}"
        for expected_cached in (False, True):
            status, read = request("GET", user_path)
            assert status == 200, (status, read)
            assert (read["id"], read["cached"]) == (created["id"], expected_cached), read
        assert request("POST", "/users/", {"username": "SMOKE_tester"})[0] == 409
        print("smoke: create, read, cached read and conflict behave as documented", flush=True)
        subprocess.run(
            [
                "uv",
                "run",
                "--frozen",
                "schemathesis",
                "run",
                f"{BASE}/openapi.json",
                "--checks",
                "all",
                "--max-examples",
                "100",
                "--seed",
                "1",
            ],
            cwd=ROOT,
            check=True,
        )
    finally:
        process.send_signal(signal.SIGINT)
        code = process.wait(timeout=60)
    time.sleep(1)
    leftovers = leftover_processes(str(data_dir))
    assert code == 0, f"start command exited with {code}"
    assert not leftovers, f"processes left running: {leftovers}"
    print("smoke: Ctrl-C stopped everything", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
