"""Notification Service request dependencies."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header, Query, Request
from pydantic import Field
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from terrascale.common.deps import SessionDep
from terrascale.common.ids import MAX_ID
from terrascale.notifications.config import NotificationSettings
from terrascale.notifications.repository import NotificationRepository
from terrascale.notifications.wakeups import WakeUpHub

DEFAULT_PAGE = 20
MAX_PAGE = 40
# One kind or several, comma-separated; the pattern is in the OpenAPI document too.
KINDS_PATTERN = r"^(follow|mention|reply)(,(follow|mention|reply))*$"

# Dependencies are coroutines even when they do no I/O: FastAPI runs a plain function in a
# worker thread, a round trip that costs more than the function.


async def _settings(request: Request) -> NotificationSettings:
    return request.app.state.settings


async def _notifications(session: SessionDep) -> NotificationRepository:
    return NotificationRepository(session)


async def _hub(request: Request) -> WakeUpHub:
    return request.app.state.wake_up_hub


async def _session_factory(request: Request) -> async_sessionmaker[AsyncSession]:
    return request.app.state.session_factory


SettingsDep = Annotated[NotificationSettings, Depends(_settings)]
NotificationRepositoryDep = Annotated[NotificationRepository, Depends(_notifications)]
WakeUpHubDep = Annotated[WakeUpHub, Depends(_hub)]
SessionFactoryDep = Annotated[async_sessionmaker[AsyncSession], Depends(_session_factory)]

CursorQuery = Annotated[
    int | None,
    Query(ge=0, le=MAX_ID, description="A notification id.", examples=["42"]),
]
LimitQuery = Annotated[int, Query(ge=1, le=MAX_PAGE, description=f"Page size, 1-{MAX_PAGE}.")]
KindsQuery = Annotated[
    list[Annotated[str, Field(pattern=KINDS_PATTERN)]] | None,
    Query(
        description="Only these kinds: `follow`, `mention`, `reply`, comma-separated or "
        "repeated (`kinds=mention,reply`).",
    ),
]
LastEventIdHeader = Annotated[
    int | None,
    Header(
        ge=0,
        le=MAX_ID,
        description="Resume after this notification id (browsers send it on reconnect).",
    ),
]
