"""A statement PostgreSQL cancels because it ran too long (statement_timeout), or a connection
it refuses because it has too many, answers 503 with Retry-After, like an unreachable database;
other database errors stay 500s."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
from fastapi import FastAPI
from httpx import ASGITransport, AsyncClient
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from terrascale.common.errors import install_error_handlers
from terrascale.common.testing.helpers import PROBLEM_JSON
from terrascale.common.testing.plugin import ServerAddresses


@pytest.fixture
async def refused_role(test_servers: ServerAddresses) -> AsyncIterator[str]:
    """A role PostgreSQL lets in zero times: connecting as it fails with too_many_connections."""
    role = f"ts_refused_{uuid.uuid4().hex[:8]}"
    admin = create_async_engine(
        test_servers.postgres, poolclass=NullPool, isolation_level="AUTOCOMMIT"
    )
    async with admin.connect() as connection:
        await connection.execute(text(f'CREATE ROLE "{role}" LOGIN CONNECTION LIMIT 0'))
    yield role
    async with admin.connect() as connection:
        await connection.execute(text(f'DROP ROLE "{role}"'))
    await admin.dispose()


@pytest.fixture
async def client(test_servers: ServerAddresses, refused_role: str) -> AsyncIterator[AsyncClient]:
    engine = create_async_engine(test_servers.postgres, poolclass=NullPool)
    refused = create_async_engine(
        make_url(test_servers.postgres).set(username=refused_role), poolclass=NullPool
    )
    app = FastAPI()
    install_error_handlers(app)

    @app.get("/slow")
    async def slow() -> None:
        async with engine.connect() as connection:
            await connection.execute(text("SET statement_timeout = '20ms'"))
            await connection.execute(text("SELECT pg_sleep(1)"))

    @app.get("/crowded")
    async def crowded() -> None:
        async with refused.connect() as connection:
            await connection.execute(text("SELECT 1"))

    @app.get("/wrong")
    async def wrong() -> None:
        async with engine.connect() as connection:
            await connection.execute(text("SELECT 1 / 0"))

    transport = ASGITransport(app=app, raise_app_exceptions=False)
    async with AsyncClient(transport=transport, base_url="http://testserver") as c:
        yield c
    await engine.dispose()
    await refused.dispose()


async def test_a_cancelled_statement_is_503_with_retry_after(client: AsyncClient) -> None:
    response = await client.get("/slow")
    assert response.status_code == 503
    assert response.headers["content-type"] == PROBLEM_JSON
    assert response.headers["retry-after"] == "1"


async def test_a_refused_connection_is_503_with_retry_after(client: AsyncClient) -> None:
    response = await client.get("/crowded")
    assert response.status_code == 503
    assert response.headers["content-type"] == PROBLEM_JSON
    assert response.headers["retry-after"] == "1"


async def test_a_failing_query_is_still_a_500(client: AsyncClient) -> None:
    response = await client.get("/wrong")
    assert response.status_code == 500
    assert response.headers["content-type"] == PROBLEM_JSON
