"""User Service request dependencies."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Path, Request

from terrascale.common.deps import SessionDep
from terrascale.common.ids import MAX_ID
from terrascale.users.config import UserSettings
from terrascale.users.repository import UserRepository


def _settings(request: Request) -> UserSettings:
    return request.app.state.settings


def _repository(session: SessionDep) -> UserRepository:
    return UserRepository(session)


SettingsDep = Annotated[UserSettings, Depends(_settings)]
UserRepositoryDep = Annotated[UserRepository, Depends(_repository)]
UserIdPath = Annotated[
    int,
    Path(ge=1, le=MAX_ID, description="The user's id, in decimal.", examples=["1234567890123"]),
]
