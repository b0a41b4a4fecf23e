"""Request context: an id for every request (``X-Request-ID`` in and out), one log line each, and
the request metrics."""

from __future__ import annotations

import logging
import re
import secrets
import time

import structlog
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from terrascale.common.logging import get_logger
from terrascale.common.metrics import (
    HTTP_REQUEST_DURATION,
    HTTP_REQUESTS,
    HTTP_REQUESTS_IN_FLIGHT,
)

REQUEST_ID_HEADER = "x-request-id"
_REQUEST_ID_HEADER_BYTES = REQUEST_ID_HEADER.encode()
# Echo a caller's id only when it is short and printable, so it cannot forge log lines.
_SAFE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")

ACCESS_LOGGER = "terrascale.access"
logger = get_logger(ACCESS_LOGGER)
# The level check structlog would make, made first: below the level, the event is never built.
_level_check = logging.getLogger(ACCESS_LOGGER)
# The route label of a request no route matched (a 404 or a 405): raw paths would make a
# series per URL anyone cares to try.
UNMATCHED_ROUTE = "unmatched"


def route_template(scope: Scope) -> str:
    """The matched route's template (``/users/{user_id}``), set by the router in the scope."""
    route = scope.get("route")
    return getattr(route, "path", UNMATCHED_ROUTE) if route is not None else UNMATCHED_ROUTE


def _request_id(scope: Scope) -> str:
    for name, value in scope["headers"]:
        if name == _REQUEST_ID_HEADER_BYTES:
            candidate = value.decode("latin-1")
            if _SAFE_REQUEST_ID.match(candidate):
                return candidate
            break
    # 128 random bits as 32 hex digits, like uuid4().hex without building a UUID object.
    return secrets.token_hex(16)


class RequestContextMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        request_id = _request_id(scope)
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(request_id=request_id)
        status = 500
        started = time.perf_counter()

        async def send_with_request_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                MutableHeaders(scope=message).append(REQUEST_ID_HEADER, request_id)
            await send(message)

        HTTP_REQUESTS_IN_FLIGHT.inc()
        try:
            await self.app(scope, receive, send_with_request_id)
        finally:
            HTTP_REQUESTS_IN_FLIGHT.dec()
            duration = time.perf_counter() - started
            method = scope["method"]
            route = route_template(scope)
            HTTP_REQUESTS.labels(method, route, str(status)).inc()
            HTTP_REQUEST_DURATION.labels(method, route).observe(duration)
            level = logging.WARNING if status >= 500 else logging.INFO  # noqa: PLR2004
            if _level_check.isEnabledFor(level):
                logger.log(
                    level,
                    "request",
                    method=method,
                    path=scope["path"],
                    status=status,
                    duration_ms=round(duration * 1000, 2),
                )
            structlog.contextvars.clear_contextvars()
