"""User Service request dependencies."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from contextlib import asynccontextmanager
from typing import Annotated

from fastapi import Depends, Path, Request
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from terrascale.common.auth import AccessTokenIssuer
from terrascale.common.db import transaction
from terrascale.common.deps import CacheDep, SessionDep
from terrascale.common.ids import MAX_ID
from terrascale.users.auth_service import LoginThrottle, TokenService
from terrascale.users.config import UserSettings
from terrascale.users.repository import RefreshTokenRepository, UserRepository
from terrascale.users.schemas import USERNAME_PATTERN


async def _settings(request: Request) -> UserSettings:
    return request.app.state.settings


class UserRepositoryOnDemand:
    """A ``UserRepository`` whose session and transaction start only when asked for. A route that
    usually answers from the cache takes this instead of ``UserRepositoryDep``, so a cache hit
    builds no session at all; the transaction commits (or rolls back on error) as it closes."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    @asynccontextmanager
    async def transaction(self) -> AsyncGenerator[UserRepository]:
        async with transaction(self._sessions) as session:
            yield UserRepository(session)


async def _repository(session: SessionDep) -> UserRepository:
    return UserRepository(session)


async def _repository_on_demand(request: Request) -> UserRepositoryOnDemand:
    return UserRepositoryOnDemand(request.app.state.session_factory)


async def _token_service(request: Request, session: SessionDep) -> TokenService:
    issuer: AccessTokenIssuer = request.app.state.token_issuer
    settings: UserSettings = request.app.state.settings
    return TokenService(
        users=UserRepository(session),
        refresh_tokens=RefreshTokenRepository(session),
        issuer=issuer,
        refresh_ttl_seconds=settings.refresh_token_ttl_seconds,
    )


async def _login_throttle(request: Request, cache: CacheDep) -> LoginThrottle:
    settings: UserSettings = request.app.state.settings
    return LoginThrottle(
        cache=cache,
        max_failures=settings.login_max_failures,
        window_seconds=settings.login_lockout_seconds,
    )


SettingsDep = Annotated[UserSettings, Depends(_settings)]
UserRepositoryDep = Annotated[UserRepository, Depends(_repository)]
UserRepositoryOnDemandDep = Annotated[UserRepositoryOnDemand, Depends(_repository_on_demand)]
TokenServiceDep = Annotated[TokenService, Depends(_token_service)]
LoginThrottleDep = Annotated[LoginThrottle, Depends(_login_throttle)]
UserIdPath = Annotated[
    int,
    Path(ge=1, le=MAX_ID, description="The user's id, in decimal.", examples=["1234567890123"]),
]
UsernamePath = Annotated[str, Path(pattern=USERNAME_PATTERN, examples=["ada_lovelace"])]
