"""The local gateway: one base URL for the browser, as the compose nginx gateway gives.

It serves the built web client (``web/dist``) at ``/`` and forwards every API path to the
service that owns it, by the same route table as ``deploy/gateway/nginx.conf`` (a test checks
that both send every path of every service's OpenAPI document to that service). Responses are
streamed through unbuffered, so the notification stream (Server-Sent Events) stays live.

    python -m terrascale.launcher.gateway --port 8080 \
        --upstream user-service=http://127.0.0.1:5000 --upstream graph-service=...
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import AsyncGenerator, AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from http import HTTPStatus
from pathlib import Path

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

# The repository's built client; `python3 dev.py up` runs from a clone, where it is committed.
DEFAULT_WEB_ROOT = Path(__file__).resolve().parents[5] / "web" / "dist"


@dataclass(frozen=True, slots=True)
class ApiRoute:
    pattern: re.Pattern[str]
    service: str


# Same order of precedence as nginx.conf: its regex locations win over its prefixes, and among
# prefixes the longest wins (none of these overlap).
API_ROUTES: tuple[ApiRoute, ...] = tuple(
    ApiRoute(re.compile(pattern), service)
    for pattern, service in (
        (r"^/users/[^/]+/posts/?$", "post-service"),
        (r"^/users/[^/]+/(following|followers|relationship|counts)(/|$)", "graph-service"),
        (r"^/notifications", "notification-service"),
        (r"^/timelines/", "timeline-service"),
        (r"^/posts", "post-service"),
        (r"^/users", "user-service"),
        (r"^/auth/", "user-service"),
    )
)
STREAM_PATH = "/notifications/stream"


def service_for(path: str) -> str | None:
    """The service that owns ``path``, or None for the web client's own files."""
    return next((route.service for route in API_ROUTES if route.pattern.search(path)), None)


# The client's pages: scripts and styles only from this origin, no inline script, and API
# calls only to this origin.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; manifest-src 'self'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)
WEB_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}
# Connection-level headers a proxy must not pass on (RFC 9110 §7.6.1), and the length, which
# httpx sets for what it actually sends. Host is passed on, as nginx's `proxy_set_header Host
# $host`, so the services' Link headers name the gateway.
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "content-length",
    }
)
CONNECT_TIMEOUT_SECONDS = 2
READ_TIMEOUT_SECONDS = 30  # as nginx's proxy_read_timeout; the stream has none (heartbeats)


class WebHeaders:
    """Adds ``WEB_HEADERS`` to every answer the gateway gives itself (pages, assets, 404s)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [
                    *message.get("headers", []),
                    *((k.lower().encode(), v.encode()) for k, v in WEB_HEADERS.items()),
                ]
            await send(message)

        await self.app(scope, receive, with_headers)


def create_gateway(upstreams: Mapping[str, str], web_root: Path) -> Starlette:
    client = httpx.AsyncClient(timeout=httpx.Timeout(READ_TIMEOUT_SECONDS, connect=2))
    missing = {route.service for route in API_ROUTES} - upstreams.keys()
    if missing:
        raise ValueError(f"no upstream URL for {', '.join(sorted(missing))}")
    if not (web_root / "index.html").is_file():
        raise ValueError(f"no built web client in {web_root} (cd web && npm ci && npm run build)")
    web_files = WebHeaders(StaticFiles(directory=web_root, html=True))

    async def health(_request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def dispatch(scope: Scope, receive: Receive, send: Send) -> None:
        service = service_for(scope["path"])
        if service is None:
            await web_files(scope, receive, send)
            return
        response = await forward(Request(scope, receive), upstreams[service])
        await response(scope, receive, send)

    async def forward(request: Request, base_url: str) -> Response:
        headers = {k: v for k, v in request.headers.items() if k not in HOP_BY_HOP}
        client_host = request.client.host if request.client else ""
        forwarded_for = request.headers.get("x-forwarded-for")
        headers["x-forwarded-for"] = (
            f"{forwarded_for}, {client_host}" if forwarded_for else client_host
        )
        headers["x-forwarded-proto"] = request.url.scheme
        timeout = httpx.Timeout(
            None if request.url.path == STREAM_PATH else READ_TIMEOUT_SECONDS,
            connect=CONNECT_TIMEOUT_SECONDS,
        )
        outgoing = client.build_request(
            request.method,
            f"{base_url}{request.url.path}",
            params=request.url.query,
            headers=headers,
            content=request.stream(),
            timeout=timeout,
        )
        try:
            upstream = await client.send(outgoing, stream=True)
        except httpx.TransportError:
            return problem(502, "Bad Gateway", "The service that owns this path did not answer.")

        async def body() -> AsyncIterator[bytes]:
            try:
                async for chunk in upstream.aiter_raw():
                    yield chunk
            finally:
                await upstream.aclose()

        return StreamingResponse(
            body(),
            status_code=upstream.status_code,
            headers={
                k: v for k, v in upstream.headers.multi_items() if k.lower() not in HOP_BY_HOP
            },
        )

    async def http_error(_request: Request, exc: Exception) -> Response:
        status = exc.status_code if isinstance(exc, HTTPException) else 500
        return problem(status, HTTPStatus(status).phrase)

    @asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncGenerator[None]:
        async with client:
            yield

    return Starlette(
        routes=[Route("/health", health), Mount("/", app=dispatch)],
        exception_handlers={HTTPException: http_error},
        lifespan=lifespan,
    )


def problem(status: int, title: str, detail: str | None = None) -> Response:
    body: dict[str, object] = {"type": "about:blank", "title": title, "status": status}
    if detail:
        body["detail"] = detail
    return JSONResponse(body, status_code=status, media_type="application/problem+json")


def parse_upstream(value: str) -> tuple[str, str]:
    name, separator, url = value.partition("=")
    if not separator or not url.startswith("http"):
        raise argparse.ArgumentTypeError(f"expected NAME=URL, got {value!r}")
    return name, url.rstrip("/")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="terrascale-gateway", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--web-root", type=Path, default=DEFAULT_WEB_ROOT)
    parser.add_argument(
        "--upstream", type=parse_upstream, action="append", default=[], help="NAME=URL"
    )
    args = parser.parse_args(argv)
    gateway = create_gateway(dict(args.upstream), args.web_root)
    uvicorn.run(gateway, host=args.host, port=args.port, log_level="warning")
    return 0


if __name__ == "__main__":
    sys.exit(main())
