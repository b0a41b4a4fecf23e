"""Liveness and readiness: ``/health`` touches nothing, ``/ready`` checks each dependency."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping

from fastapi import APIRouter, Request
from pydantic import BaseModel

from terrascale.common.errors import PROBLEM_TYPE_PREFIX, problem_response, problem_responses

ReadinessCheck = Callable[[], Awaitable[object]]


class Health(BaseModel):
    status: str


class Readiness(BaseModel):
    status: str
    checks: dict[str, str]


async def run_checks(
    checks: Mapping[str, ReadinessCheck], *, seconds_each: float
) -> dict[str, str]:
    """Run every check concurrently, each bounded by ``seconds_each``; "ok" or why it failed."""

    async def one(check: ReadinessCheck) -> str:
        try:
            await asyncio.wait_for(check(), seconds_each)
        except TimeoutError:
            return f"timed out after {seconds_each:g}s"
        except Exception as exc:  # noqa: BLE001 - any failure means "not ready"; report it
            return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        return "ok"

    results = await asyncio.gather(*(one(check) for check in checks.values()))
    return dict(zip(checks, results, strict=True))


def health_router() -> APIRouter:
    router = APIRouter(tags=["operations"])

    @router.get("/health", summary="Liveness: the process is up")
    async def health() -> Health:
        return Health(status="ok")

    @router.get(
        "/ready",
        summary="Readiness: every dependency answers",
        responses=problem_responses(503),
        response_model=Readiness,
    )
    async def ready(request: Request) -> object:
        checks: Mapping[str, ReadinessCheck] = request.app.state.readiness_checks
        results = await run_checks(
            checks, seconds_each=request.app.state.settings.ready_timeout_seconds
        )
        failed = [name for name, result in results.items() if result != "ok"]
        if failed:
            return problem_response(
                request,
                status=503,
                type_uri=f"{PROBLEM_TYPE_PREFIX}not-ready",
                title="Not ready",
                detail=f"Unavailable: {', '.join(failed)}.",
                checks=results,
            )
        return Readiness(status="ready", checks=results)

    return router
