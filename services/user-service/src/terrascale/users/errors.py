"""Errors the User Service raises on purpose."""

from __future__ import annotations

from terrascale.common.errors import ConflictError, NotFoundError


class UsernameTakenError(ConflictError):
    title = "Username taken"
    slug = "username-taken"


class UserNotFoundError(NotFoundError):
    title = "User not found"
    slug = "user-not-found"
