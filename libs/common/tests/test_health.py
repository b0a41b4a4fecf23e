from __future__ import annotations

import asyncio

from terrascale.common.health import run_checks


async def test_checks_run_concurrently_and_report_each_outcome() -> None:
    async def ok() -> None:
        await asyncio.sleep(0.05)

    async def slow() -> None:
        await asyncio.sleep(5)

    async def broken() -> None:
        raise ConnectionRefusedError("connection refused")

    async def silent() -> None:
        raise RuntimeError

    loop = asyncio.get_running_loop()
    started = loop.time()
    results = await run_checks(
        {"ok": ok, "slow": slow, "broken": broken, "silent": silent}, seconds_each=0.2
    )
    assert loop.time() - started < 1
    assert results == {
        "ok": "ok",
        "slow": "timed out after 0.2s",
        "broken": "ConnectionRefusedError: connection refused",
        "silent": "RuntimeError",
    }
