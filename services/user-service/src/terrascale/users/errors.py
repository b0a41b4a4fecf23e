"""Errors the User Service raises on purpose."""

from __future__ import annotations

from terrascale.common.auth import AuthenticationError
from terrascale.common.errors import ConflictError, NotFoundError, TooManyRequestsError


class UsernameTakenError(ConflictError):
    title = "Username taken"
    slug = "username-taken"


class UserNotFoundError(NotFoundError):
    title = "User not found"
    slug = "user-not-found"


class InvalidCredentialsError(AuthenticationError):
    """One answer for a wrong password, an unknown user and a locked account."""

    title = "Invalid credentials"
    slug = "invalid-credentials"

    def __init__(self) -> None:
        super().__init__("The username or password is incorrect.", error=None)


class InvalidRefreshTokenError(AuthenticationError):
    title = "Invalid refresh token"
    slug = "invalid-refresh-token"
    keeps_changes = True  # a detected reuse revokes the token family, and that must stick

    def __init__(self) -> None:
        super().__init__("The refresh token is invalid, expired or revoked.")


class TooManyLoginAttemptsError(TooManyRequestsError):
    title = "Too many failed sign-ins"
    slug = "too-many-login-attempts"
