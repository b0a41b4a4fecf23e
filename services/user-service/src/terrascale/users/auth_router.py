"""HTTP routes for signing in, refreshing and signing out."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Response
from fastapi.security import OAuth2PasswordRequestForm

from terrascale.common.errors import problem_responses
from terrascale.common.ratelimit import LimitSignIns
from terrascale.users.deps import LoginThrottleDep, TokenServiceDep
from terrascale.users.schemas import RefreshRequest, TokenPair

router = APIRouter(prefix="/auth", tags=["auth"])

# Token responses must never be stored by caches (RFC 6749 §5.1).
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


@router.post(
    "/token",
    summary="Sign in with username and password (OAuth2 password flow)",
    responses=problem_responses(401, 422, 429),
    dependencies=[LimitSignIns],
    operation_id="create_token",
)
async def create_token(
    form: Annotated[OAuth2PasswordRequestForm, Depends()],
    tokens: TokenServiceDep,
    throttle: LoginThrottleDep,
    response: Response,
) -> TokenPair:
    response.headers.update(NO_STORE)
    return await tokens.login(username=form.username, password=form.password, throttle=throttle)


@router.post(
    "/refresh",
    summary="Exchange a refresh token for new tokens (the old one stops working)",
    responses=problem_responses(401, 422, 429),
    dependencies=[LimitSignIns],
    operation_id="refresh_token",
)
async def refresh_token(
    body: RefreshRequest, tokens: TokenServiceDep, response: Response
) -> TokenPair:
    response.headers.update(NO_STORE)
    return await tokens.refresh(body.refresh_token)


@router.post(
    "/logout",
    status_code=204,
    summary="Sign out: revoke the refresh token and the tokens rotated from it",
    responses=problem_responses(422),
    operation_id="logout",
)
async def logout(body: RefreshRequest, tokens: TokenServiceDep) -> None:
    await tokens.logout(body.refresh_token)
