"""Request dependencies every service uses, as ``Annotated`` aliases."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

from terrascale.common.cache import Cache
from terrascale.common.db import transaction


async def _session(request: Request) -> AsyncIterator[AsyncSession]:
    async with transaction(request.app.state.session_factory) as session:
        yield session


async def _cache(request: Request) -> Cache:
    return request.app.state.cache


# Dependencies are ``async def`` on purpose: FastAPI runs plain functions in a worker thread,
# a hop that costs more than the work they do.
# scope="function": the transaction commits before the response is sent, so a failed commit
# becomes an error response instead of a 2xx for data that was never stored.
SessionDep = Annotated[AsyncSession, Depends(_session, scope="function")]
CacheDep = Annotated[Cache, Depends(_cache)]
