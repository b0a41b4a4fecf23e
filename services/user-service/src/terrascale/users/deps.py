"""User Service request dependencies."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Path, Request

from terrascale.common.deps import CacheDep, SessionDep
from terrascale.common.ids import MAX_ID
from terrascale.users.auth_service import LoginThrottle, TokenService
from terrascale.users.config import UserSettings
from terrascale.users.repository import RefreshTokenRepository, UserRepository
from terrascale.users.schemas import USERNAME_PATTERN
from terrascale.users.tokens import AccessTokenIssuer


async def _settings(request: Request) -> UserSettings:
    return request.app.state.settings


async def _repository(session: SessionDep) -> UserRepository:
    return UserRepository(session)


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
TokenServiceDep = Annotated[TokenService, Depends(_token_service)]
LoginThrottleDep = Annotated[LoginThrottle, Depends(_login_throttle)]
UserIdPath = Annotated[
    int,
    Path(ge=1, le=MAX_ID, description="The user's id, in decimal.", examples=["1234567890123"]),
]
UsernamePath = Annotated[str, Path(pattern=USERNAME_PATTERN, examples=["ada_lovelace"])]
