"""What this machine can do at best, measured in the same run as the system.

- **Framework**: a bare FastAPI endpoint returning a constant (``bench/quick-read/bare_app.py``),
  served by the same launcher and settings as the services (Gunicorn, Uvicorn workers).
- **Load generator**: its own CPU per request against that endpoint, hence the rate one core of
  it could drive: the generator is not the limit while that is well above what is measured.
- **Storage**: Redis GET and ZADD with ``redis-benchmark`` (one request per round trip, and 16
  pipelined), PostgreSQL point selects with ``pgbench -S``, both against the servers the system
  uses. Either tool missing (Debian: redis-tools, postgresql-client) skips its row, and says so.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Generator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import httpx
from sqlalchemy.engine import URL

from terrascale.common.embedded import RedisAddress

REPO = Path(__file__).resolve().parents[5]
BARE_APP = REPO / "bench" / "quick-read" / "bare_app.py"


@dataclass(frozen=True, slots=True)
class StorageCeiling:
    name: str
    rate: float | None  # operations/s; None when the tool is missing
    command: str
    note: str = ""


@contextmanager
def bare_server(port: int, env: dict[str, str], output: IO[bytes]) -> Generator[str]:
    """The bare FastAPI app on ``port`` with the services' server settings, until the block ends."""
    process = subprocess.Popen(
        [sys.executable, str(BARE_APP)],
        env={**os.environ, **env, "HOST": "127.0.0.1", "PORT": str(port)},
        stdout=output,
        stderr=output,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}/constant"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(url, timeout=1).is_success:
                    break
            except httpx.TransportError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the bare FastAPI app did not start")
            time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


_RATE = re.compile(r"^([A-Z]+): ([0-9.]+) requests per second", re.MULTILINE)


def redis_ceilings(redis: RedisAddress, requests: int) -> list[StorageCeiling]:
    tool = shutil.which("redis-benchmark")  # Debian: redis-tools
    ceilings: list[StorageCeiling] = []
    for pipeline in (1, 16):
        command = [
            "redis-benchmark",
            "-h",
            redis.host,
            "-p",
            str(redis.port),
            "-c",
            "32",
            "-n",
            str(requests),
            "-P",
            str(pipeline),
            "-t",
            "get,zadd",
            "-q",
        ]
        shown = " ".join(command)
        if tool is None:
            ceilings.append(StorageCeiling(f"Redis GET/ZADD, -P {pipeline}", None, shown))
            continue
        output = subprocess.run(
            [tool, *command[1:]], capture_output=True, text=True, check=True
        ).stdout
        # -q prints progress with carriage returns, then one final line per test.
        rates = {name: float(rate) for name, rate in _RATE.findall(output.replace("\r", "\n"))}
        ceilings.extend(
            StorageCeiling(f"Redis {name}, pipeline {pipeline}", rates.get(name), shown)
            for name in ("GET", "ZADD")
        )
    return ceilings


def postgres_ceiling(admin: URL, database: str, seconds: int, scale: int = 10) -> StorageCeiling:
    """``pgbench -S`` (point selects by primary key) on a database of its own (scale 10: a
    million accounts)."""
    env = {
        **os.environ,
        "PGHOST": str(admin.query.get("host", admin.host or "127.0.0.1")),
        "PGPORT": str(admin.port or 5432),
        "PGUSER": admin.username or "postgres",
        "PGPASSWORD": admin.password or "",
    }
    command = ["pgbench", "-S", "-n", "-c", "8", "-j", "2", "-T", str(seconds), database]
    shown = " ".join(command)
    pgbench = shutil.which("pgbench")  # Debian: postgresql-client
    if pgbench is None:
        return StorageCeiling("PostgreSQL point select (pgbench -S)", None, shown)
    subprocess.run(
        [pgbench, "-i", "-q", "-s", str(scale), database], env=env, check=True, capture_output=True
    )
    output = subprocess.run(
        [pgbench, *command[1:]], env=env, capture_output=True, text=True, check=True
    ).stdout
    match = re.search(r"tps = ([0-9.]+)", output)
    rate = float(match.group(1)) if match else None
    return StorageCeiling("PostgreSQL point select (pgbench -S), transactions", rate, shown)
