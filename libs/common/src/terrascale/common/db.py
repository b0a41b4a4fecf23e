"""Async SQLAlchemy engine and sessions, with timeouts that turn an unreachable database into a
fast failure instead of a hung request."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import MetaData, event, text
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from terrascale.common.errors import AppError
from terrascale.common.metrics import DB_POOL_CONNECTIONS, DB_POOL_MAX_CONNECTIONS
from terrascale.common.settings import ServiceSettings

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def new_metadata() -> MetaData:
    """Metadata for one service's tables, with a naming convention so migrations name
    constraints predictably. Each service has its own: in one process (tests, tools) a shared
    registry would mix services' tables, and two services may own tables of the same name."""
    return MetaData(naming_convention=NAMING_CONVENTION)


def create_engine(
    settings: ServiceSettings,
    *,
    autocommit: bool = False,
    pre_ping: bool = True,
    pool_name: str = "primary",
    url: URL | None = None,
) -> AsyncEngine:
    """``autocommit`` is for an engine that only runs single read-only statements: no BEGIN
    and ROLLBACK around each (a session's ``begin()`` on it makes no transaction, so never
    write through it). Without ``pre_ping`` a connection is not checked before use, which
    saves a round trip per checkout; the caller then retries a statement that met a dropped
    connection (``DBAPIError.connection_invalidated``). ``pool_name`` labels the pool's metrics;
    ``url`` is another database than the settings' own (a shard), with the same settings."""
    statement_timeout_ms = int(settings.db_statement_timeout_seconds * 1000)
    engine = create_async_engine(
        url or settings.sqlalchemy_url,
        isolation_level="AUTOCOMMIT" if autocommit else None,
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
        pool_timeout=settings.db_connect_timeout_seconds,
        pool_pre_ping=pre_ping,
        pool_recycle=1800,
        connect_args={
            "timeout": settings.db_connect_timeout_seconds,
            "command_timeout": settings.db_statement_timeout_seconds,
            "server_settings": {
                "application_name": settings.service_name,
                "statement_timeout": str(statement_timeout_ms),
            },
        },
    )
    event.listen(engine.sync_engine, "do_connect", _missing_socket_is_refused)
    _report_pool_usage(engine, pool_name, settings.db_pool_size + settings.db_max_overflow)
    return engine


def _missing_socket_is_refused(
    dialect: Any, _record: Any, cargs: Any, cparams: dict[str, Any]
) -> Any:
    """Connect as usual, but report a server whose unix socket is gone (stopped, restarting)
    as what it is, a refused connection, rather than a FileNotFoundError nobody maps to 503."""
    try:
        return dialect.connect(*cargs, **cparams)
    except FileNotFoundError as exc:
        raise ConnectionRefusedError(f"PostgreSQL socket not found: {exc.filename}") from exc


def _report_pool_usage(engine: AsyncEngine, pool_name: str, max_connections: int) -> None:
    """Keep the pool gauges current on every checkout and checkin. They are set from the
    pool's own counts rather than incremented, so a connection lost uncounted cannot skew
    them."""
    pool = engine.sync_engine.pool
    open_connections = DB_POOL_CONNECTIONS.labels(pool_name, "open")
    in_use = DB_POOL_CONNECTIONS.labels(pool_name, "in_use")
    DB_POOL_MAX_CONNECTIONS.labels(pool_name).set(max_connections)

    def report(*_args: Any) -> None:
        checked_out = pool.checkedout()  # pyright: ignore[reportAttributeAccessIssue]
        in_use.set(checked_out)
        open_connections.set(checked_out + pool.checkedin())  # pyright: ignore[reportAttributeAccessIssue]

    event.listen(engine.sync_engine, "checkout", report)
    event.listen(engine.sync_engine, "checkin", report)


def create_session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


@asynccontextmanager
async def transaction(factory: async_sessionmaker[AsyncSession]) -> AsyncGenerator[AsyncSession]:
    """One session and one transaction: committed when the caller is done, rolled back on error
    unless the error is an ``AppError`` that keeps its changes."""
    async with factory() as session:
        try:
            yield session
        except BaseException as exc:
            if isinstance(exc, AppError) and exc.keeps_changes:
                await session.commit()
            elif session.in_transaction():
                await session.rollback()
            raise
        else:
            # A request answered from the cache never began a transaction: nothing to commit.
            if session.in_transaction():
                await session.commit()


async def ping(engine: AsyncEngine) -> None:
    async with engine.connect() as connection:
        await connection.execute(text("SELECT 1"))
