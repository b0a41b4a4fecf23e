"""Errors the Post Service raises on purpose."""

from __future__ import annotations

from fastapi.exceptions import RequestValidationError

from terrascale.common.errors import AppError, ConflictError, NotFoundError


class PostNotFoundError(NotFoundError):
    title = "Post not found"
    slug = "post-not-found"


class IdempotencyKeyReusedError(AppError):
    status = 422
    title = "Idempotency key reused"
    slug = "idempotency-key-reused"


class IdempotencyKeyBusyError(ConflictError):
    """The key vanished between claiming and reading it (it expired and was purged): rare, and
    a retry settles it."""

    title = "Idempotency key busy"
    slug = "idempotency-key-busy"


class InvalidFieldError(RequestValidationError):
    """A field that is well-formed but refers to something unusable (a reply to a missing post).
    A validation error, so it is rendered exactly like one: 422 with the field named."""

    def __init__(self, location: tuple[str, ...], message: str) -> None:
        super().__init__([{"loc": location, "msg": message, "type": "value_error"}])
