"""Alembic plumbing shared by every service's ``migrations/env.py``.

Migrations run online over asyncpg, one transaction per migration, under a PostgreSQL advisory
lock so that replicas starting together apply them once, one after another.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from alembic import context
from alembic.config import Config
from sqlalchemy import Connection, MetaData, text
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

MIGRATION_LOCK_KEY = 0x7E_55_CA_1E  # any constant shared by all replicas of a service


def alembic_config(*, script_location: str, database_url: URL | str) -> Config:
    """Build an Alembic config without an ini file; the URL travels as an attribute so
    passwords with ``%`` are never run through configparser interpolation."""
    config = Config()
    config.set_main_option("script_location", script_location)
    config.attributes["database_url"] = database_url
    return config


def run_env(*, metadata: MetaData, default_url: Callable[[], URL]) -> None:
    """The body of a service's env.py. The URL comes from the caller's config (CLI, tests) or,
    for ``alembic`` run by hand, from the service's settings (DATABASE_URL or POSTGRES_*)."""
    url = context.config.attributes.get("database_url") or default_url()
    if context.is_offline_mode():
        context.configure(
            url=url,
            target_metadata=metadata,
            literal_binds=True,
            transaction_per_migration=True,
        )
        with context.begin_transaction():
            context.run_migrations()
        return
    asyncio.run(_run_online(url, metadata))


async def _run_online(url: URL | str, metadata: MetaData) -> None:
    engine = create_async_engine(url, poolclass=NullPool)
    try:
        async with engine.connect() as connection:
            await connection.run_sync(_run_locked, metadata)
    finally:
        await engine.dispose()


def _run_locked(connection: Connection, metadata: MetaData) -> None:
    connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
    connection.commit()
    try:
        context.configure(
            connection=connection,
            target_metadata=metadata,
            transaction_per_migration=True,
            compare_type=True,
        )
        with context.begin_transaction():
            context.run_migrations()
    finally:
        connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": MIGRATION_LOCK_KEY})
        connection.commit()
