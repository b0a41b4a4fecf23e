"""``terrascale up``: the whole system on this machine, with one command.

PostgreSQL and Redis come from POSTGRES_HOST / DATABASE_URL and REDIS_HOST when set (environment
or ``.env``); otherwise an embedded PostgreSQL and an embedded Valkey are started with their data in
``--data-dir``. Each service then runs its production entrypoint (migrations, then Gunicorn).
Ctrl-C stops everything this command started, services first, servers last.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Generator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, cast

import httpx
import psutil
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy import text
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from terrascale.common.embedded import EmbeddedPostgres, EmbeddedValkey, RedisAddress
from terrascale.common.keys import generate_private_key_pem, load_private_key, public_key_pem
from terrascale.launcher.services import DEFAULT_PORT_BASE, ServiceSpec, services_from

STARTUP_TIMEOUT_SECONDS = 90
DEFAULT_GATEWAY_PORT = 8080  # as the compose gateway

Processes = list[tuple[ServiceSpec, subprocess.Popen[bytes]]]


class ConfiguredServers(BaseSettings):
    """Which servers the user configured; anything unset is embedded."""

    model_config = SettingsConfigDict(env_file=".env", case_sensitive=False, extra="ignore")

    postgres_host: str | None = None
    database_url: str | None = None
    redis_host: str | None = None
    jwt_private_key: str | None = None


def say(message: str) -> None:
    print(f"terrascale: {message}", flush=True)


def port_is_free(host: str, port: int) -> bool:
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


async def ensure_database(admin_url: URL, name: str) -> None:
    engine = create_async_engine(admin_url, poolclass=NullPool, isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as connection:
            exists = await connection.scalar(
                text("SELECT 1 FROM pg_database WHERE datname = :name"), {"name": name}
            )
            if not exists:
                await connection.execute(text(f'CREATE DATABASE "{name}"'))
    finally:
        await engine.dispose()


# Every process's pools at their maximum, 34 pools of DB_POOL_SIZE + DB_MAX_OVERFLOW (204
# connections: the Graph and Post Services have one pool per shard database in each process),
# with room for psql and the harnesses' own connections.
EMBEDDED_MAX_CONNECTIONS = 250


def start_embedded_postgres(
    data_dir: Path, specs: Sequence[ServiceSpec], cleanup: ExitStack
) -> tuple[EmbeddedPostgres, URL]:
    say(f"starting embedded PostgreSQL (data in {data_dir})")
    postgres = EmbeddedPostgres(data_dir, max_connections=EMBEDDED_MAX_CONNECTIONS)
    cleanup.callback(postgres.stop)
    admin_url = postgres.start()
    for spec in specs:
        for database in spec.databases:
            asyncio.run(ensure_database(admin_url, database))
    return postgres, admin_url


def stop_leftover_valkey(data_dir: Path) -> None:
    """A launcher killed with SIGKILL leaves its Valkey running; take it down before reuse."""
    try:
        process = psutil.Process(int((data_dir / "valkey.pid").read_text().strip()))
    except (OSError, ValueError, psutil.NoSuchProcess):
        return
    if "valkey" in process.name():
        process.terminate()
        process.wait(timeout=10)


# The event streams live in this server: an event the outbox relay was told is stored must
# survive a crash of Valkey, so every write is on disk before it is acknowledged.
DURABLE_VALKEY = {"appendonly": "yes", "appendfsync": "always"}


def start_embedded_valkey(
    data_dir: Path, cleanup: ExitStack, config: Mapping[str, str]
) -> tuple[EmbeddedValkey, RedisAddress]:
    stop_leftover_valkey(data_dir)
    say(f"starting embedded Valkey (data in {data_dir})")
    valkey = EmbeddedValkey(data_dir, persist=True, config=config)
    cleanup.callback(valkey.stop)
    return valkey, valkey.start()


def development_signing_keys(key_file: Path) -> dict[str, str]:
    """A signing key kept in the data folder, so tokens survive restarts of the local system."""
    if not key_file.exists():
        key_file.parent.mkdir(parents=True, exist_ok=True)
        key_file.write_text(generate_private_key_pem())
        key_file.chmod(0o600)
    private_pem = key_file.read_text()
    return {
        "JWT_PRIVATE_KEY": private_pem,
        "JWT_PUBLIC_KEY": public_key_pem(load_private_key(private_pem)),
    }


def start_process(
    spec: ServiceSpec,
    command: str,
    *,
    env: dict[str, str],
    host: str,
    embedded_postgres: URL | None,
    metrics_dir: Path,
    output: IO[bytes] | None = None,
) -> subprocess.Popen[bytes]:
    service_env = {
        **env,
        "HOST": host,
        "PORT": str(spec.port_for(command)),
        # One folder per process group: the server empties it when it starts.
        "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir / f"{spec.name}-{command}"),
    }
    if not spec.signs_tokens:
        service_env.pop("JWT_PRIVATE_KEY", None)
    if embedded_postgres is not None:
        # One embedded server, one database per service.
        url = embedded_postgres.set(database=spec.database)
        service_env["DATABASE_URL"] = url.render_as_string(hide_password=False)
        if spec.shard_databases:
            service_env.setdefault("SHARD_DATABASES", ",".join(spec.shard_databases))
    say(f"starting {spec.name} {command}")
    # Own session: Ctrl-C reaches only the launcher, which then stops children in order.
    return subprocess.Popen(
        [sys.executable, "-m", spec.module, command],
        env=service_env,
        start_new_session=True,
        stdout=output,
        stderr=output,
    )


def stop_process(process: subprocess.Popen[bytes], timeout: float = 30) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def wait_until_healthy(spec: ServiceSpec, process: subprocess.Popen[bytes], port: int) -> None:
    wait_for_health(spec.name, process, port)


def wait_for_health(name: str, process: subprocess.Popen[bytes], port: int) -> None:
    url = f"http://127.0.0.1:{port}/health"
    deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"terrascale: {name} exited during start-up")
        try:
            if httpx.get(url, timeout=1).is_success:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.25)
    raise SystemExit(f"terrascale: {name} was not healthy after {STARTUP_TIMEOUT_SECONDS}s")


def start_gateway(
    specs: Sequence[ServiceSpec], *, host: str, port: int, output: IO[bytes] | None
) -> subprocess.Popen[bytes]:
    """The web client and one base URL for the API (terrascale.launcher.gateway)."""
    say("starting the gateway")
    upstreams = [f"--upstream={spec.name}=http://127.0.0.1:{spec.port}" for spec in specs]
    command = [sys.executable, "-m", "terrascale.launcher.gateway", "--host", host]
    return subprocess.Popen(
        [*command, "--port", str(port), *upstreams],
        start_new_session=True,
        stdout=output,
        stderr=output,
    )


def supervise(processes: Sequence[tuple[str, subprocess.Popen[bytes]]]) -> int:
    """Block until Ctrl-C / SIGTERM (exit 0) or until a service dies (exit 1)."""
    stopping = False

    def request_stop(_signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    while not stopping:
        for name, process in processes:
            if process.poll() is not None:
                say(f"{name} exited with code {process.returncode}; stopping everything")
                return 1
        time.sleep(0.5)
    return 0


@dataclass(slots=True)
class RunningSystem:
    """What ``running_system`` started, for programs that drive the system (the load harness,
    the fault tests): the servers, and each service's and worker's process by name."""

    services: tuple[ServiceSpec, ...]
    processes: Processes
    postgres_admin_url: URL | None  # None when a configured server is used
    redis: RedisAddress | None  # None when a configured server is used
    signing_key_file: Path | None  # None when JWT_PRIVATE_KEY is configured
    postgres: EmbeddedPostgres | None = None  # the embedded servers, to stop and start them
    valkey: EmbeddedValkey | None = None
    start_process: Callable[[ServiceSpec, str], subprocess.Popen[bytes]] | None = field(
        default=None, repr=False
    )
    gateway: subprocess.Popen[bytes] | None = None  # when started with a gateway port

    def spec(self, name: str) -> ServiceSpec:
        return next(spec for spec in self.services if spec.name == name)

    def base_url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.spec(name).port}"

    def process(self, name: str, command: str) -> subprocess.Popen[bytes]:
        """The live process of ``name``'s ``start`` (the API) or ``worker`` command."""
        for spec, process in reversed(self.processes):
            if spec.name == name and process_command(process) == command:
                return process
        raise KeyError(f"{name} {command}")

    def kill(self, name: str, command: str) -> None:
        """SIGKILL the whole process group (Gunicorn's master and its workers), as a crash."""
        process = self.process(name, command)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)  # own session: its group id is its pid
        process.wait()

    def restart(self, name: str, command: str) -> subprocess.Popen[bytes]:
        """Start ``name``'s ``command`` again with the same environment; returns once healthy."""
        if self.start_process is None:
            raise RuntimeError("this system cannot start processes")
        spec = self.spec(name)
        old = self.process(name, command)
        process = self.start_process(spec, command)
        self.processes[self.processes.index((spec, old))] = (spec, process)
        wait_until_healthy(spec, process, spec.port_for(command))
        return process


def process_command(process: subprocess.Popen[bytes]) -> str:
    """``start`` or ``worker``: the last argument ``start_process`` gave the process."""
    return str(cast(Sequence[str], process.args)[-1])


@contextmanager
def running_system(
    *,
    data_dir: Path,
    host: str = "127.0.0.1",
    port_base: int = DEFAULT_PORT_BASE,
    extra_env: Mapping[str, str] | None = None,
    output: IO[bytes] | None = None,
    valkey_config: Mapping[str, str] = DURABLE_VALKEY,
    gateway_port: int | None = None,
) -> Generator[RunningSystem]:
    """Servers, services and workers, up and healthy; everything stops when the block exits.

    ``extra_env`` overrides the services' environment; ``output`` receives their output
    (default: this process's); ``valkey_config`` is the embedded Valkey's persistence;
    ``gateway_port``, when given, is where the gateway serves the web client and the API.
    """
    specs = services_from(port_base)
    taken = [
        (spec.name, port) for spec in specs for port in spec.ports() if not port_is_free(host, port)
    ]
    if gateway_port is not None and not port_is_free(host, gateway_port):
        taken.append(("the gateway", gateway_port))
    if taken:
        name, port = taken[0]
        raise SystemExit(f"terrascale: port {port} on {host} is taken; {name} cannot start")

    configured = ConfiguredServers()
    env = dict(os.environ)
    # People read these logs in a terminal; LOG_FORMAT=json restores production output.
    env.setdefault("LOG_FORMAT", "console")
    env.update(extra_env or {})
    with ExitStack() as cleanup:
        embedded_postgres = redis = key_file = postgres = valkey = None
        if configured.postgres_host or configured.database_url:
            say("using the configured PostgreSQL")
        else:
            postgres, embedded_postgres = start_embedded_postgres(
                data_dir / "postgres", specs, cleanup
            )
        if configured.redis_host:
            say("using the configured Redis")
        else:
            valkey, redis = start_embedded_valkey(data_dir / "valkey", cleanup, valkey_config)
            env.update({"REDIS_HOST": redis.host, "REDIS_PORT": str(redis.port)})
        if not configured.jwt_private_key:
            key_file = data_dir / "jwt" / "signing-key.pem"
            env.update(development_signing_keys(key_file))

        # Services call each other by these URLs (e.g. to check that a user exists).
        env.update(
            {
                f"{spec.name.replace('-', '_').upper()}_URL": f"http://127.0.0.1:{spec.port}"
                for spec in specs
            }
        )
        processes: Processes = []

        def start(spec: ServiceSpec, command: str) -> subprocess.Popen[bytes]:
            process = start_process(
                spec,
                command,
                env=env,
                host=host,
                embedded_postgres=embedded_postgres,
                metrics_dir=data_dir / "metrics",
                output=output,
            )
            cleanup.callback(stop_process, process)
            processes.append((spec, process))
            return process

        services = [(spec, start(spec, "start")) for spec in specs]
        for spec, process in services:
            wait_until_healthy(spec, process, spec.port)
        # Workers start once their service has migrated its database.
        workers = [(spec, start(spec, "worker")) for spec in specs if spec.has_worker]
        for spec, process in workers:
            wait_until_healthy(spec, process, spec.worker_port)
        gateway = None
        if gateway_port is not None:
            gateway = start_gateway(specs, host=host, port=gateway_port, output=output)
            cleanup.callback(stop_process, gateway)
            wait_for_health("the gateway", gateway, gateway_port)
        yield RunningSystem(
            specs, processes, embedded_postgres, redis, key_file, postgres, valkey, start, gateway
        )
        say("stopping")


def up(
    *,
    data_dir: Path,
    host: str,
    port_base: int = DEFAULT_PORT_BASE,
    gateway_port: int = DEFAULT_GATEWAY_PORT,
) -> int:
    with running_system(
        data_dir=data_dir, host=host, port_base=port_base, gateway_port=gateway_port
    ) as system:
        for spec in system.services:
            base = f"http://localhost:{spec.port}"
            say(f"{spec.name} is up: {base}  (API docs: {base}/docs, metrics: {base}/metrics)")
            if spec.has_worker:
                say(f"  its worker's metrics: http://localhost:{spec.worker_port}/metrics")
        say(f"the web client and the whole API: http://localhost:{gateway_port}/")
        say("press Ctrl-C to stop everything")
        watched = [(spec.name, process) for spec, process in system.processes]
        if system.gateway is not None:
            watched.append(("the gateway", system.gateway))
        code = supervise(watched)
    say("stopped")
    return code


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="terrascale", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    start = commands.add_parser("up", help="start every service (Ctrl-C stops all of it)")
    start.add_argument(
        "--data-dir", type=Path, default=Path(".data"), help="where embedded servers keep data"
    )
    start.add_argument("--host", default="127.0.0.1", help="address the services listen on")
    start.add_argument(
        "--port-base",
        type=int,
        default=DEFAULT_PORT_BASE,
        help=f"the first service's port; the others follow it (default {DEFAULT_PORT_BASE})",
    )
    start.add_argument(
        "--gateway-port",
        type=int,
        default=DEFAULT_GATEWAY_PORT,
        help=f"where the web client and the whole API are served (default {DEFAULT_GATEWAY_PORT})",
    )
    args = parser.parse_args(argv)
    return up(
        data_dir=args.data_dir.resolve(),
        host=args.host,
        port_base=args.port_base,
        gateway_port=args.gateway_port,
    )


if __name__ == "__main__":
    sys.exit(main())
