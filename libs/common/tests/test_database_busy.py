"""A statement PostgreSQL cancels because it ran too long (statement_timeout) answers 503 with
Retry-After, like an unreachable database; other database errors stay 500s."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from fastapi import FastAPI
from httpx import ASGITransport, AsyncClient
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from terrascale.common.errors import install_error_handlers
from terrascale.common.testing.helpers import PROBLEM_JSON
from terrascale.common.testing.plugin import ServerAddresses


@pytest.fixture
async def client(test_servers: ServerAddresses) -> AsyncIterator[AsyncClient]:
    engine = create_async_engine(test_servers.postgres, poolclass=NullPool)
    app = FastAPI()
    install_error_handlers(app)

    @app.get("/slow")
    async def slow() -> None:
        async with engine.connect() as connection:
            await connection.execute(text("SET statement_timeout = '20ms'"))
            await connection.execute(text("SELECT pg_sleep(1)"))

    @app.get("/wrong")
    async def wrong() -> None:
        async with engine.connect() as connection:
            await connection.execute(text("SELECT 1 / 0"))

    transport = ASGITransport(app=app, raise_app_exceptions=False)
    async with AsyncClient(transport=transport, base_url="http://testserver") as c:
        yield c
    await engine.dispose()


async def test_a_cancelled_statement_is_503_with_retry_after(client: AsyncClient) -> None:
    response = await client.get("/slow")
    assert response.status_code == 503
    assert response.headers["content-type"] == PROBLEM_JSON
    assert response.headers["retry-after"] == "1"


async def test_a_failing_query_is_still_a_500(client: AsyncClient) -> None:
    response = await client.get("/wrong")
    assert response.status_code == 500
    assert response.headers["content-type"] == PROBLEM_JSON
