"""The local gateway: the same route table as the compose nginx gateway, the web client's
files with their Content-Security-Policy, and requests forwarded to the services unchanged."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncGenerator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from terrascale.common.testing.helpers import free_port, serve_over_http
from terrascale.launcher.gateway import API_ROUTES, DEFAULT_WEB_ROOT, create_gateway, service_for

ROOT = Path(__file__).resolve().parents[3]
NGINX_CONF = ROOT / "deploy" / "gateway" / "nginx.conf"
OPENAPI = ROOT / "web" / "openapi"
OWNERS = {
    "users": "user-service",
    "graph": "graph-service",
    "posts": "post-service",
    "timelines": "timeline-service",
    "notifications": "notification-service",
}
# Every service answers these itself; through a gateway they are the gateway's own or absent.
PER_SERVICE_PATHS = {"/", "/health", "/ready", "/metrics"}


@dataclass(frozen=True, slots=True)
class Location:
    modifier: str  # "=", "~" or "" (prefix)
    path: str
    upstream: str | None  # the service, or None when nginx answers itself


def nginx_locations() -> list[Location]:
    config = NGINX_CONF.read_text()
    blocks = re.finditer(r"location\s+(?:(=|~)\s+)?(\S+)\s*\{([^}]*)\}", config)
    return [
        Location(
            modifier or "",
            path,
            upstream.group(1).replace("_", "-")
            if (upstream := re.search(r"proxy_pass http://(\w+);", body))
            else None,
        )
        for modifier, path, body in (block.groups() for block in blocks)
    ]


def nginx_route(path: str, locations: list[Location]) -> Location:
    """nginx's location choice: an exact match; else the first regex that matches; else the
    longest matching prefix."""
    for location in locations:
        if location.modifier == "=" and location.path == path:
            return location
    for location in locations:
        if location.modifier == "~" and re.search(location.path, path):
            return location
    prefixes = [loc for loc in locations if loc.modifier == "" and path.startswith(loc.path)]
    return max(prefixes, key=lambda location: len(location.path))


def api_paths() -> list[tuple[str, str]]:
    """(a concrete path, its owner) for every path of every service's OpenAPI document."""
    documents = {
        owner: json.loads((OPENAPI / f"{name}.json").read_text()) for name, owner in OWNERS.items()
    }
    return [
        (re.sub(r"\{[^}]+\}", "238539279264618497", template), owner)
        for owner, document in documents.items()
        for template in document["paths"]
        if template not in PER_SERVICE_PATHS
    ]


@pytest.mark.parametrize(("path", "owner"), api_paths())
def test_the_gateway_and_nginx_send_every_api_path_to_its_service(path: str, owner: str) -> None:
    assert service_for(path) == owner
    assert nginx_route(path, nginx_locations()).upstream == owner


def test_nginx_serves_the_web_client_where_no_api_path_matches() -> None:
    locations = nginx_locations()
    assert nginx_route("/", locations).upstream is None
    assert nginx_route("/assets/index.js", locations).upstream is None
    assert service_for("/") is None
    assert service_for("/assets/index.js") is None


def test_every_gateway_route_is_an_nginx_location() -> None:
    nginx = {location.path for location in nginx_locations()}
    for route in API_ROUTES:
        pattern = route.pattern.pattern
        assert pattern in nginx or pattern.removeprefix("^") in nginx, pattern


def upstream_app() -> FastAPI:
    """A stand-in service that answers with what it received."""
    app = FastAPI()

    @app.api_route("/{path:path}", methods=["GET", "POST", "DELETE"])
    async def echo(request: Request, path: str) -> JSONResponse:
        return JSONResponse(
            {
                "method": request.method,
                "path": f"/{path}",
                "query": request.url.query,
                "body": (await request.body()).decode(),
                "authorization": request.headers.get("authorization"),
                "host": request.headers.get("host"),
                "forwarded_for": request.headers.get("x-forwarded-for"),
            },
            status_code=201 if request.method == "POST" else 200,
            headers={"Link": '<http://x/?max_id=5>; rel="next"'},
        )

    return app


@asynccontextmanager
async def gateway_to(upstream_url: str) -> AsyncGenerator[httpx.AsyncClient]:
    gateway = create_gateway(dict.fromkeys(OWNERS.values(), upstream_url), DEFAULT_WEB_ROOT)
    async with (
        LifespanManager(gateway),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=gateway, client=("203.0.113.7", 1234)),
            base_url="http://gateway",
        ) as client,
    ):
        yield client


async def test_requests_reach_the_service_unchanged_and_answers_come_back() -> None:
    async with serve_over_http(upstream_app()) as upstream_url, gateway_to(upstream_url) as client:
        response = await client.post(
            "/posts?limit=2",
            content='{"text": "hi"}',
            headers={"authorization": "Bearer token", "content-type": "application/json"},
        )
    assert response.status_code == 201
    assert response.headers["link"] == '<http://x/?max_id=5>; rel="next"'
    assert response.json() == {
        "method": "POST",
        "path": "/posts",
        "query": "limit=2",
        "body": '{"text": "hi"}',
        "authorization": "Bearer token",
        "host": "gateway",
        "forwarded_for": "203.0.113.7",
    }


async def test_a_service_that_does_not_answer_is_a_502_problem() -> None:
    async with gateway_to(f"http://127.0.0.1:{free_port()}") as client:
        response = await client.get("/timelines/home")
    assert response.status_code == 502
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["title"] == "Bad Gateway"


async def test_the_web_client_is_served_with_a_policy_against_inline_scripts() -> None:
    async with gateway_to(f"http://127.0.0.1:{free_port()}") as client:
        page = await client.get("/")
        missing = await client.get("/no-such-file.js")
        health = await client.get("/health")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    policy = page.headers["content-security-policy"]
    assert "script-src 'self'" in policy
    assert "unsafe-inline" not in policy
    assert not re.search(r"<script(?![^>]*\bsrc=)", page.text), "an inline script"
    assert missing.status_code == 404
    assert missing.json() == {"type": "about:blank", "title": "Not Found", "status": 404}
    assert health.json() == {"status": "ok"}


def test_a_gateway_without_a_built_client_or_an_upstream_refuses_to_start(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no built web client"):
        create_gateway(dict.fromkeys(OWNERS.values(), "http://127.0.0.1:1"), tmp_path)
    with pytest.raises(
        ValueError, match="no upstream URL for graph-service, notification-service, post"
    ):
        create_gateway({"user-service": "http://127.0.0.1:1"}, DEFAULT_WEB_ROOT)
