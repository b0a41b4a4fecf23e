"""Load shedding: past the limit of requests in flight, 503 problem+json at once; operations
endpoints and exempt paths are always served; the limit frees up as requests finish."""

from __future__ import annotations

import asyncio

from fastapi import FastAPI
from httpx import ASGITransport, AsyncClient

from terrascale.common.overload import LoadShedder
from terrascale.common.testing.helpers import PROBLEM_JSON


def slow_app(release: asyncio.Event, *, max_in_flight: int) -> FastAPI:
    app = FastAPI()

    @app.get("/slow")
    async def slow() -> dict[str, bool]:
        await release.wait()
        return {"ok": True}

    @app.get("/stream")
    async def stream() -> dict[str, bool]:
        await release.wait()
        return {"ok": True}

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    app.add_middleware(LoadShedder, max_in_flight=max_in_flight, exempt_paths=["/stream"])
    return app


async def test_requests_past_the_limit_are_shed_at_once_until_one_finishes() -> None:
    release = asyncio.Event()
    app = slow_app(release, max_in_flight=2)
    async with AsyncClient(transport=ASGITransport(app=app), base_url="http://t") as client:
        admitted = [asyncio.create_task(client.get("/slow")) for _ in range(2)]
        exempt = asyncio.create_task(client.get("/stream"))
        await asyncio.sleep(0.05)  # both admitted requests are now waiting inside the app

        shed = await asyncio.wait_for(client.get("/slow"), timeout=1)
        assert shed.status_code == 503
        assert shed.headers["content-type"] == PROBLEM_JSON
        assert shed.headers["retry-after"] == "1"
        assert shed.json()["type"] == "urn:terrascale:problem:overloaded"
        assert (await client.get("/health")).status_code == 200

        release.set()
        assert [r.status_code for r in await asyncio.gather(*admitted)] == [200, 200]
        assert (await exempt).status_code == 200
        assert (await client.get("/slow")).status_code == 200


async def test_a_limit_of_zero_sheds_nothing() -> None:
    release = asyncio.Event()
    app = slow_app(release, max_in_flight=0)
    async with AsyncClient(transport=ASGITransport(app=app), base_url="http://t") as client:
        waiting = [asyncio.create_task(client.get("/slow")) for _ in range(20)]
        await asyncio.sleep(0.05)
        release.set()
        assert {r.status_code for r in await asyncio.gather(*waiting)} == {200}
