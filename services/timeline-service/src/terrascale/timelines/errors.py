"""Errors the Timeline Service raises on purpose."""

from __future__ import annotations

from terrascale.common.errors import DependencyUnavailableError


class PostServiceUnavailableError(DependencyUnavailableError):
    title = "Post Service unavailable"
    slug = "post-service-unavailable"

    def __init__(self, detail: str) -> None:
        super().__init__(detail, headers={"Retry-After": "1"})
