"""Timeline Service request dependencies."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Query, Request

from terrascale.common.ids import MAX_ID
from terrascale.timelines.hydration import Hydrator
from terrascale.timelines.service import Timelines

DEFAULT_PAGE = 20
MAX_PAGE = 40


async def _timelines(request: Request) -> Timelines:
    return request.app.state.timelines


async def _hydrator(request: Request) -> Hydrator:
    return request.app.state.hydrator


TimelinesDep = Annotated[Timelines, Depends(_timelines)]
HydratorDep = Annotated[Hydrator, Depends(_hydrator)]
CursorQuery = Annotated[int | None, Query(ge=1, le=MAX_ID, examples=["1234567890123"])]
LimitQuery = Annotated[int, Query(ge=1, le=MAX_PAGE, description=f"Page size, 1-{MAX_PAGE}.")]
