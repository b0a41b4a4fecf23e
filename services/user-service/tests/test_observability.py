"""Request ids, request logs, traces over OTLP/HTTP and the last-resort 500 handler."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from httpx import ASGITransport, AsyncClient
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from terrascale.common.testing.helpers import log_events, metric_value
from terrascale.common.testing.otlp import OtlpReceiver, attribute, otlp_receiver
from terrascale.users.config import UserSettings


async def test_request_id_is_echoed(client: AsyncClient) -> None:
    response = await client.get("/health", headers={"X-Request-ID": "trace-me.42"})
    assert response.headers["x-request-id"] == "trace-me.42"


@pytest.mark.parametrize("sent", [None, b"", b"has spaces", b"x" * 129, "bad\u00e9".encode()])
async def test_request_id_is_generated_when_absent_or_unsafe(
    client: AsyncClient, sent: bytes | None
) -> None:
    headers = [] if sent is None else [(b"X-Request-ID", sent)]
    response = await client.get("/health", headers=headers)
    generated = response.headers["x-request-id"]
    assert generated.encode() != sent
    assert len(generated) == 32
    assert int(generated, 16) >= 0


async def test_each_request_is_logged_once_as_json(
    client: AsyncClient, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    await client.get("/users/12345", headers={"X-Request-ID": "req-1"})
    [line] = log_events(capsys.readouterr().out, "request")
    assert line["method"] == "GET"
    assert line["path"] == "/users/12345"
    assert line["status"] == 404
    assert line["request_id"] == "req-1"
    assert isinstance(line["duration_ms"], float)
    assert "trace_id" not in line  # tracing is off without OTLP_ENDPOINT


async def test_above_info_only_failed_requests_are_logged(
    settings: UserSettings,
    make_app: Callable[[UserSettings], FastAPI],
    capsys: pytest.CaptureFixture[str],
) -> None:
    app = make_app(settings.model_copy(update={"log_level": "WARNING"}))

    async def explode() -> None:
        raise RuntimeError("boom")

    app.add_api_route("/explode", explode)
    async with (
        LifespanManager(app),
        AsyncClient(
            transport=ASGITransport(app=app, raise_app_exceptions=False),
            base_url="http://testserver",
        ) as client,
    ):
        capsys.readouterr()
        assert (await client.get("/health")).status_code == 200
        assert (await client.get("/explode")).status_code == 500
    [line] = log_events(capsys.readouterr().out, "request")
    assert line["path"] == "/explode"
    assert line["status"] == 500
    assert line["level"] == "warning"


async def test_debug_switches_logs_to_console(
    settings: UserSettings,
    make_app: Callable[[UserSettings], FastAPI],
    capsys: pytest.CaptureFixture[str],
) -> None:
    debug = settings.model_copy(update={"debug": True, "log_format": None})
    app = make_app(debug)
    async with (
        LifespanManager(app),
        AsyncClient(transport=ASGITransport(app=app), base_url="http://testserver") as client,
    ):
        capsys.readouterr()
        await client.get("/health")
    output = capsys.readouterr().out
    request_lines = [
        line for line in output.splitlines() if "request" in line and "/health" in line
    ]
    assert request_lines
    assert not request_lines[0].startswith("{")


async def test_unexpected_error_is_a_problem_without_internals(
    settings: UserSettings,
    make_app: Callable[[UserSettings], FastAPI],
    capsys: pytest.CaptureFixture[str],
) -> None:
    app = make_app(settings)

    async def explode() -> None:
        raise RuntimeError("secret internal detail")

    app.add_api_route("/explode", explode)
    async with (
        LifespanManager(app),
        AsyncClient(
            transport=ASGITransport(app=app, raise_app_exceptions=False),
            base_url="http://testserver",
        ) as client,
    ):
        response = await client.get("/explode")
    assert response.status_code == 500
    assert response.headers["content-type"] == "application/problem+json"
    assert "secret" not in response.text
    assert response.json()["detail"] == "An unexpected error occurred."
    output = capsys.readouterr().out
    [logged] = log_events(output, "unhandled exception")
    assert "secret internal detail" in str(logged["exception"])


@pytest.fixture
def receiver() -> Iterator[OtlpReceiver]:
    with otlp_receiver() as started:
        yield started


async def test_traces_reach_an_otlp_http_collector(
    settings: UserSettings,
    make_app: Callable[[UserSettings], FastAPI],
    receiver: OtlpReceiver,
    username: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    traced = settings.model_copy(update={"otlp_endpoint": receiver.endpoint})
    app: FastAPI = make_app(traced)
    async with (
        LifespanManager(app),
        AsyncClient(transport=ASGITransport(app=app), base_url="http://testserver") as client,
    ):
        user_id = (await client.post("/users/", json={"username": username})).json()["id"]
        capsys.readouterr()
        await client.get(f"/users/{user_id}")
        [request_line] = log_events(capsys.readouterr().out, "request")
    # Leaving the lifespan shut the tracer provider down, which flushes every span.

    received = receiver.spans()
    assert {r.service for r in received} == {"user-service"}
    spans = [r.span for r in received]
    server_spans = [
        s for s in spans if s.kind == Span.SPAN_KIND_SERVER and attribute(s, "http.route")
    ]
    read = next(s for s in server_spans if attribute(s, "http.route") == "/users/{user_id}")
    in_read_trace = [s for s in spans if s.trace_id == read.trace_id]
    systems = {attribute(s, "db.system") or attribute(s, "db.system.name") for s in in_read_trace}
    assert {"postgresql", "redis"} <= systems
    database_span = next(
        s
        for s in in_read_trace
        if "postgresql" in (attribute(s, "db.system"), attribute(s, "db.system.name"))
    )
    assert database_span.parent_span_id  # a child inside the request's trace, not a root

    assert request_line["trace_id"] == read.trace_id.hex()
    assert len(str(request_line["span_id"])) == 16


async def test_metrics_count_requests_by_route_template_and_status(client: AsyncClient) -> None:
    async def scrape() -> str:
        response = await client.get("/metrics")
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/plain")
        return response.text

    read_missing = {"method": "GET", "route": "/users/{user_id}", "status": "404"}
    unmatched = {"method": "GET", "route": "unmatched", "status": "404"}
    before = await scrape()
    for user_id in (123456789, 987654321):
        assert (await client.get(f"/users/{user_id}")).status_code == 404
    assert (await client.get("/no/such/route")).status_code == 404
    after = await scrape()

    def moved(name: str, **labels: str) -> float:
        return metric_value(after, name, **labels) - metric_value(before, name, **labels)

    assert moved("terrascale_http_requests_total", **read_missing) == 2
    assert moved("terrascale_http_requests_total", **unmatched) == 1
    read = {"method": "GET", "route": "/users/{user_id}"}
    assert moved("terrascale_http_request_duration_seconds_count", **read) == 2
    assert moved("terrascale_cache_lookups_total", cache="user", result="miss") == 2
    # No raw path ever becomes a label value.
    assert "123456789" not in after
    assert metric_value(after, "terrascale_db_pool_max_connections", pool="primary") > 0
    assert metric_value(after, "terrascale_db_pool_connections", pool="primary", state="open") > 0
