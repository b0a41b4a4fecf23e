"""Errors the Graph Service raises on purpose."""

from __future__ import annotations

from terrascale.common.errors import AppError, DependencyUnavailableError, NotFoundError


class UserNotFoundError(NotFoundError):
    title = "User not found"
    slug = "user-not-found"


class SelfFollowError(AppError):
    status = 422
    title = "Cannot follow yourself"
    slug = "self-follow"


class InvalidCursorError(AppError):
    status = 400
    title = "Invalid cursor"
    slug = "invalid-cursor"


class UserServiceUnavailableError(DependencyUnavailableError):
    title = "User Service unavailable"
    slug = "user-service-unavailable"

    def __init__(self, detail: str) -> None:
        super().__init__(detail, headers={"Retry-After": "1"})
