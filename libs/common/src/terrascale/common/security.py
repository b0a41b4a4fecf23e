"""HTTP hardening every service shares: response headers, a request body size limit, CORS.

``Strict-Transport-Security`` is not set here: the services speak plain HTTP behind a TLS
terminator (the gateway, an ingress), and HSTS only means something on an HTTPS response, so it
belongs there.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import cast

from fastapi import FastAPI
from starlette.datastructures import Headers, MutableHeaders
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from terrascale.common.errors import PROBLEM_TYPE_PREFIX, ProblemResponse, problem_response

SECURITY_HEADERS = (
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
)
# What a response to a signed-in request is: personal, so no cache may keep it.
NO_STORE = (b"cache-control", b"no-store")


def add_security_headers(headers: MutableHeaders, *, signed_in: bool) -> None:
    for name, value in SECURITY_HEADERS:
        headers.raw.append((name, value))
    if signed_in and "cache-control" not in headers:
        headers.raw.append(NO_STORE)


def is_signed_in(scope: Scope) -> bool:
    return any(name == b"authorization" for name, _ in scope["headers"])


class SecurityHeadersMiddleware:
    """Adds ``SECURITY_HEADERS`` to every response, and ``Cache-Control: no-store`` to every
    response to a request that carries credentials (timelines, notifications, your profile)
    unless the route chose its own. Public reads sent without credentials get none: they hold
    nothing personal, and their freshness is the gateway's or a CDN's to decide."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        signed_in = is_signed_in(scope)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                add_security_headers(MutableHeaders(scope=message), signed_in=signed_in)
            await send(message)

        await self.app(scope, receive, send_with_headers)


ErrorHandler = Callable[[Request, Exception], Awaitable[Response]]


def secure_server_errors(app: FastAPI) -> None:
    """Starlette answers an unhandled exception's 500 outside every added middleware, so that
    answer gets its headers from the handler instead."""
    # install_error_handlers registered an async handler here.
    handler = cast(
        Callable[[Request, Exception], Awaitable[Response]], app.exception_handlers[Exception]
    )

    async def with_headers(request: Request, exc: Exception) -> Response:
        response = await handler(request, exc)
        add_security_headers(response.headers, signed_in=is_signed_in(request.scope))
        return response

    app.add_exception_handler(Exception, with_headers)


class BodySizeLimitMiddleware:
    """413 problem for a body over ``max_bytes``, before the app reads any of it: at once when
    Content-Length says so; a chunked body (no length) is read here first, up to the limit, and
    replayed to the app only if it stays within it."""

    def __init__(self, app: ASGIApp, *, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        length = headers.get("content-length")
        if length is not None:
            # The server delivers exactly that many bytes (and refuses a malformed length).
            if length.isdigit() and int(length) > self.max_bytes:
                await self._too_large(scope, receive, send)
                return
            await self.app(scope, receive, send)
            return
        if "transfer-encoding" not in headers:
            await self.app(scope, receive, send)  # no body
            return

        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client left before finishing its body
            chunk: bytes = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                await self._too_large(scope, receive, send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break

        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()  # after the body: what the server says next (disconnect)
            replayed = True
            return {"type": "http.request", "body": b"".join(chunks), "more_body": False}

        await self.app(scope, replay, send)

    async def _too_large(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = problem_response(
            Request(scope),
            status=413,
            title="Request body too large",
            type_uri=f"{PROBLEM_TYPE_PREFIX}request-too-large",
            detail=f"The request body may be at most {self.max_bytes} bytes.",
            # The rest of the body is never read: the connection cannot carry another request.
            headers={"Connection": "close"},
        )
        await response(scope, receive, send)


# What a browser on an allowed origin may send and read.
CORS_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
CORS_REQUEST_HEADERS = (
    "Authorization",
    "Content-Type",
    "Idempotency-Key",
    "Last-Event-ID",
    "X-Request-ID",
)
CORS_RESPONSE_HEADERS = ("Location", "Link", "Retry-After", "X-Request-ID", "WWW-Authenticate")


class ProblemCORSMiddleware(CORSMiddleware):
    """Starlette's CORS, with its refused preflight (a plain-text 400) as a problem document."""

    def __init__(self, app: ASGIApp, *, allow_origins: Sequence[str]) -> None:
        super().__init__(
            app,
            allow_origins=allow_origins,
            allow_methods=CORS_METHODS,
            allow_headers=CORS_REQUEST_HEADERS,
            expose_headers=CORS_RESPONSE_HEADERS,
            allow_credentials=False,  # bearer tokens are sent explicitly, never cookies
            max_age=600,
        )

    def preflight_response(self, request_headers: Headers) -> Response:
        response = super().preflight_response(request_headers)
        if response.status_code < 400:  # noqa: PLR2004
            return response
        refused = bytes(response.body).decode()  # "Disallowed CORS origin, method"
        headers = {
            name: value
            for name, value in response.headers.items()
            if name not in ("content-type", "content-length")
        }
        return ProblemResponse(
            {
                "type": f"{PROBLEM_TYPE_PREFIX}cors-refused",
                "title": "Cross-origin request refused",
                "status": response.status_code,
                "detail": refused.replace("Disallowed CORS", "Not allowed:") + ".",
            },
            response.status_code,
            headers,
        )
