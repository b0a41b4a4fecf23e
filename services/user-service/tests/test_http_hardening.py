"""What every service's HTTP layer promises, checked on the User Service through a real server:
security headers, CORS, the request body limit, per-IP sign-in limits (failing open without
Redis), and secrets kept out of the logs."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from fastapi import FastAPI

from terrascale.common.embedded import RedisAddress
from terrascale.common.testing.helpers import PROBLEM_JSON, free_port, log_events, serve_over_http
from terrascale.common.testing.plugin import ServerAddresses
from terrascale.users.config import UserSettings

from .conftest import SIGNING_KEY_PEM, SettingsFactory

MakeApp = Callable[[UserSettings], FastAPI]


@asynccontextmanager
async def _serve(app: FastAPI) -> AsyncGenerator[httpx.AsyncClient]:
    async with serve_over_http(app) as url, httpx.AsyncClient(base_url=url, timeout=10) as client:
        yield client


@pytest.fixture
async def http(settings: UserSettings, make_app: MakeApp) -> AsyncIterator[httpx.AsyncClient]:
    async with _serve(make_app(settings)) as client:
        yield client


def _new_user() -> dict[str, str]:
    return {"username": f"user_{uuid.uuid4().hex[:16]}", "password": f"pw-{uuid.uuid4().hex}"}


def _assert_problem(response: httpx.Response, status: int, slug: str) -> dict[str, object]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM_JSON
    body = response.json()
    assert body["type"] == f"urn:terrascale:problem:{slug}"
    return body


# --- security headers ---------------------------------------------------------------------


async def test_every_answer_carries_the_security_headers(http: httpx.AsyncClient) -> None:
    for response in (
        await http.get("/health"),
        await http.get("/users/1"),  # 404
        await http.post("/users/", json={"username": "x"}),  # 422
        await http.delete("/health"),  # 405
    ):
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["referrer-policy"] == "no-referrer"
        assert response.headers["x-frame-options"] == "DENY"
        assert "strict-transport-security" not in response.headers  # the TLS terminator's job


async def test_an_unexpected_error_carries_them_too(
    settings: UserSettings, make_app: MakeApp
) -> None:
    app = make_app(settings)

    async def explode() -> None:
        raise RuntimeError("boom")

    app.add_api_route("/explode", explode)
    async with _serve(app) as client:
        response = await client.get("/explode")
        assert response.status_code == 500
        assert response.headers["x-content-type-options"] == "nosniff"


async def test_personal_answers_are_no_store_and_public_reads_are_not(
    http: httpx.AsyncClient,
) -> None:
    user = _new_user()
    created = await http.post("/users/", json=user)
    token_response = await http.post("/auth/token", data=user)
    assert token_response.headers["cache-control"] == "no-store"
    token = token_response.json()["access_token"]

    own = await http.get("/users/me", headers={"Authorization": f"Bearer {token}"})
    assert own.status_code == 200
    assert own.headers["cache-control"] == "no-store"
    public = await http.get(f"/users/{created.json()['id']}")
    assert public.status_code == 200
    assert "cache-control" not in public.headers


# --- CORS ---------------------------------------------------------------------------------

PREFLIGHT = {"Access-Control-Request-Method": "PATCH"}


async def test_without_allowed_origins_there_is_no_cross_origin_access(
    http: httpx.AsyncClient,
) -> None:
    origin = {"Origin": "https://evil.example"}
    preflight = await http.options("/users/me", headers=origin | PREFLIGHT)
    assert preflight.status_code == 405
    assert preflight.headers["content-type"] == PROBLEM_JSON
    assert "access-control-allow-origin" not in preflight.headers
    read = await http.get("/health", headers=origin)
    assert "access-control-allow-origin" not in read.headers


async def test_allowed_origins_get_cors_headers_without_credentials(
    make_settings: SettingsFactory, make_app: MakeApp
) -> None:
    app = make_app(make_settings(cors_allow_origins=["https://app.example"]))
    async with _serve(app) as client:
        allowed = {"Origin": "https://app.example"}
        preflight = await client.options(
            "/users/me",
            headers=allowed | PREFLIGHT | {"Access-Control-Request-Headers": "authorization"},
        )
        assert preflight.status_code == 200
        assert preflight.headers["access-control-allow-origin"] == "https://app.example"
        assert "PATCH" in preflight.headers["access-control-allow-methods"]
        assert "access-control-allow-credentials" not in preflight.headers

        read = await client.get("/health", headers=allowed)
        assert read.headers["access-control-allow-origin"] == "https://app.example"
        assert "X-Request-ID" in read.headers["access-control-expose-headers"]

        refused = await client.options(
            "/users/me", headers={"Origin": "https://evil.example"} | PREFLIGHT
        )
        body = _assert_problem(refused, 400, "cors-refused")
        assert body["detail"] == "Not allowed: origin."
        stranger = await client.get("/health", headers={"Origin": "https://evil.example"})
        assert "access-control-allow-origin" not in stranger.headers


def test_origins_are_checked_at_start_up(make_settings: SettingsFactory) -> None:
    with pytest.raises(ValueError, match="not an origin"):
        make_settings(cors_allow_origins=["app.example/path"])


# --- request body size --------------------------------------------------------------------


async def test_a_body_over_the_limit_is_413_by_its_length(
    make_settings: SettingsFactory, make_app: MakeApp
) -> None:
    app = make_app(make_settings(max_request_body_bytes=1024))
    async with _serve(app) as client:
        response = await client.post(
            "/users/", content=b'{"username": "' + b"a" * 2000 + b'"}', headers=JSON
        )
        body = _assert_problem(response, 413, "request-too-large")
        assert body["detail"] == "The request body may be at most 1024 bytes."
        within = await client.post("/users/", json={"username": _new_user()["username"]})
        assert within.status_code == 201


JSON = {"content-type": "application/json"}


async def test_a_chunked_body_is_stopped_once_it_grows_past_the_limit(
    make_settings: SettingsFactory, make_app: MakeApp
) -> None:
    app = make_app(make_settings(max_request_body_bytes=1024))
    async with serve_over_http(app) as url:
        reader, writer = await asyncio.open_connection("127.0.0.1", int(url.rsplit(":", 1)[1]))
        writer.write(
            b"POST /users/ HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n"
        )
        for _ in range(3):  # 3 chunks of 512 bytes, and the body never ends
            writer.write(b"200\r\n" + b"a" * 512 + b"\r\n")
        await writer.drain()
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=5)
        assert head.startswith(b"HTTP/1.1 413 ")
        headers = dict(
            line.decode().lower().split(": ", 1) for line in head.split(b"\r\n")[1:] if line
        )
        assert headers["content-type"] == PROBLEM_JSON
        assert headers["connection"] == "close"
        body = json.loads(await reader.readexactly(int(headers["content-length"])))
        assert body["type"] == "urn:terrascale:problem:request-too-large"
        writer.close()

        async def small(name: str) -> AsyncIterator[bytes]:
            yield b'{"username": '
            yield f'"{name}"}}'.encode()

        async with httpx.AsyncClient(base_url=url) as client:
            name = _new_user()["username"]
            created = await client.post("/users/", content=small(name), headers=JSON)
            assert "content-length" not in created.request.headers
            assert created.status_code == 201
            assert created.json()["username"] == name


# --- per-IP sign-in limit -----------------------------------------------------------------


async def test_sign_ups_and_sign_ins_are_limited_per_client_ip(
    make_settings: SettingsFactory, make_app: MakeApp
) -> None:
    app = make_app(make_settings(rate_limit_signin_per_minute=3))
    async with _serve(app) as client:
        user = _new_user()
        assert (await client.post("/users/", json=user)).status_code == 201
        assert (await client.post("/auth/token", data=user)).status_code == 200
        # X-Forwarded-For from a peer that is not a trusted proxy is not believed.
        spoofed = {"X-Forwarded-For": "203.0.113.9"}
        assert (await client.post("/auth/token", data=user, headers=spoofed)).status_code == 200
        limited = await client.post("/auth/token", data=user, headers=spoofed)
        body = _assert_problem(limited, 429, "rate-limited")
        assert body["detail"] == "Too many requests; at most 3 per minute."
        assert 1 <= int(limited.headers["retry-after"]) <= 20  # one request refills in 20 s
        _assert_problem(await client.post("/users/", json=_new_user()), 429, "rate-limited")
        refresh = await client.post("/auth/refresh", json={"refresh_token": "x" * 43})
        _assert_problem(refresh, 429, "rate-limited")
        # Reads and signed-in writes are not sign-ins.
        assert (await client.get("/health")).status_code == 200


async def test_behind_a_trusted_proxy_each_forwarded_client_has_its_own_limit(
    make_settings: SettingsFactory, make_app: MakeApp
) -> None:
    app = make_app(make_settings(rate_limit_signin_per_minute=1, trusted_proxies=["127.0.0.0/8"]))
    async with _serve(app) as client:
        sign_up = _sign_up_from(client)
        assert await sign_up("198.51.100.1") == 201
        assert await sign_up("198.51.100.2") == 201
        assert await sign_up("198.51.100.1") == 429
        # A client writing its own X-Forwarded-For only adds hops left of the proxy's.
        assert await sign_up("203.0.113.50, 198.51.100.1") == 429
        # The gateway's own address (trusted) is skipped to reach the client's.
        assert await sign_up("198.51.100.2, 127.0.0.1") == 429


def _sign_up_from(client: httpx.AsyncClient) -> Callable[[str], Awaitable[int]]:
    async def sign_up(forwarded_for: str) -> int:
        headers = {"X-Forwarded-For": forwarded_for}
        return (await client.post("/users/", json=_new_user(), headers=headers)).status_code

    return sign_up


async def test_without_redis_the_limits_fail_open_and_say_so_once(
    make_settings: SettingsFactory,
    make_app: MakeApp,
    test_servers: ServerAddresses,
    capsys: pytest.CaptureFixture[str],
) -> None:
    closed = ServerAddresses(test_servers.postgres, RedisAddress("127.0.0.1", free_port()))
    app = make_app(
        make_settings(servers=closed, rate_limit_signin_per_minute=1, cache_retry_after_seconds=60)
    )
    async with _serve(app) as client:
        for _ in range(3):
            assert (await client.post("/users/", json=_new_user())).status_code == 201
    output = capsys.readouterr().out
    assert len(log_events(output, "rate limits not enforced: Redis unavailable")) == 1


# --- secrets and logs ---------------------------------------------------------------------


async def test_passwords_tokens_and_the_signing_key_never_reach_the_logs(
    make_settings: SettingsFactory, make_app: MakeApp, capsys: pytest.CaptureFixture[str]
) -> None:
    app = make_app(make_settings(log_level="DEBUG"))
    user = _new_user()
    async with _serve(app) as client:
        assert (await client.post("/users/", json=user)).status_code == 201
        tokens = (await client.post("/auth/token", data=user)).json()
        bearer = {"Authorization": f"Bearer {tokens['access_token']}"}
        assert (await client.get("/users/me", headers=bearer)).status_code == 200
        profile = await client.patch("/users/me", json={"bio": "hello"}, headers=bearer)
        assert profile.status_code == 200
        wrong = await client.post("/auth/token", data=user | {"password": user["password"] + "x"})
        assert wrong.status_code == 401
        refreshed = await client.post(
            "/auth/refresh", json={"refresh_token": tokens["refresh_token"]}
        )
        assert refreshed.status_code == 200
    output = capsys.readouterr()
    logs = output.out + output.err
    assert '"level":"debug"' in logs  # DEBUG really was on
    key_body = "".join(SIGNING_KEY_PEM.strip().splitlines()[1:-1])
    secrets = {
        "password": user["password"],
        "access token": tokens["access_token"],
        "access token signature": tokens["access_token"].rsplit(".", 1)[1],
        "refresh token": tokens["refresh_token"],
        "new refresh token": refreshed.json()["refresh_token"],
        "private key": key_body,
        "private key bytes": _raw_private_key().hex(),
    }
    leaked = [name for name, secret in secrets.items() if secret in logs]
    assert leaked == []


def _raw_private_key() -> bytes:
    key = serialization.load_pem_private_key(SIGNING_KEY_PEM.encode(), password=None)
    return key.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
