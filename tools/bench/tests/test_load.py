"""The load generator against a real HTTP server: counts, errors, and latency measured from the
intended send time (so a server slower than the offered rate shows its queue)."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator

import pytest
from fastapi import FastAPI, Response

from terrascale.bench.client import Client, encode_request
from terrascale.bench.load import closed_loop, open_loop
from terrascale.bench.seed import SeedingError, send_all
from terrascale.common.testing.helpers import serve_over_http


def make_app() -> FastAPI:
    app = FastAPI()
    one_at_a_time = asyncio.Lock()
    unavailable_once: set[str] = set()

    @app.get("/ok")
    async def ok() -> dict[str, bool]:
        return {"ok": True}

    @app.get("/broken")
    async def broken() -> Response:
        return Response(status_code=500)

    @app.get("/serial")
    async def serial() -> dict[str, bool]:
        async with one_at_a_time:  # capacity: 50 requests/s, whatever the concurrency
            await asyncio.sleep(0.02)
        return {"ok": True}

    @app.get("/closing")
    async def closing() -> Response:
        return Response(b"bye", headers={"Connection": "close"})

    @app.get("/busy/{key}")
    async def busy(key: str) -> Response:
        if key not in unavailable_once:
            unavailable_once.add(key)
            return Response(status_code=503, headers={"Retry-After": "1"})
        return Response(b"done")

    @app.post("/invalid")
    async def invalid() -> Response:
        return Response(b"no", status_code=422)

    return app


@pytest.fixture
async def base_url() -> AsyncIterator[str]:
    async with serve_over_http(make_app()) as url:
        yield url


async def test_closed_loop_counts_answers_and_errors(base_url: str) -> None:
    requests = [
        encode_request("ok", "GET", f"{base_url}/ok"),
        encode_request("broken", "GET", f"{base_url}/broken"),
    ]
    turn = iter(range(10**9))
    result = await closed_loop(lambda: requests[next(turn) % 2], concurrency=4, seconds=0.5)
    assert result.operations["ok"].latency.count > 20
    assert result.operations["broken"].errors["500"] > 20
    assert result.operations["broken"].latency.count == 0
    assert result.completed == result.operations["ok"].latency.count
    assert result.errors == result.operations["broken"].error_count
    assert result.generator_us_per_request > 0


async def test_open_loop_sends_at_the_offered_rate(base_url: str) -> None:
    request = encode_request("ok", "GET", f"{base_url}/ok")
    result = await open_loop(
        lambda: request, rate=200, seconds=1.0, connections=8, rng=random.Random(2)
    )
    assert 140 <= result.sent <= 260  # Poisson arrivals: about 200, give or take
    assert result.completed == result.sent
    assert result.errors == 0
    assert result.overall().percentile_ms(50) < 50


async def test_open_loop_latency_includes_the_wait_behind_a_slow_server(base_url: str) -> None:
    """Offered 100/s to a server that does 50/s: requests queue, and their latency must say so
    (a closed-loop generator would report about 20 ms each: coordinated omission)."""
    request = encode_request("serial", "GET", f"{base_url}/serial")
    result = await open_loop(
        lambda: request, rate=100, seconds=1.5, connections=4, rng=random.Random(3)
    )
    overall = result.overall()
    assert overall.percentile_ms(50) > 100
    assert overall.max_ms > 500
    assert result.achieved_rate < 60


async def test_a_connection_the_server_closes_is_replaced(base_url: str) -> None:
    client = Client(1)
    try:
        for _ in range(3):
            response = await client.send(encode_request("closing", "GET", f"{base_url}/closing"))
            assert (response.status, response.body) == (200, b"bye")
    finally:
        client.close()


async def test_seeding_retries_503_and_stops_at_other_errors(base_url: str) -> None:
    retried = [encode_request("busy", "GET", f"{base_url}/busy/{key}") for key in ("a", "b")]
    answers = await send_all(retried, concurrency=2, what="busy")
    assert [answer.body for answer in answers] == [b"done", b"done"]
    with pytest.raises(SeedingError, match="invalid: HTTP 422"):
        await send_all(
            [encode_request("x", "POST", f"{base_url}/invalid")], concurrency=1, what="invalid"
        )
