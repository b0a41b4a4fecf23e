"""The application factory every service uses: one place for lifespan, middleware, errors,
health, tracing and the OpenAPI document, so services only add their own routers."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Callable, Sequence
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from fastapi import APIRouter, FastAPI
from fastapi.openapi.utils import get_openapi
from opentelemetry.sdk.trace import TracerProvider
from pydantic import BaseModel
from starlette.routing import Route

from terrascale.common.auth import AccessTokenVerifier
from terrascale.common.background import BackgroundWork, run_background, stop_background
from terrascale.common.cache import Cache, create_redis
from terrascale.common.db import create_engine, create_session_factory, ping
from terrascale.common.errors import PROBLEM_MEDIA_TYPE, install_error_handlers
from terrascale.common.health import ReadinessCheck, health_router
from terrascale.common.keys import load_public_key
from terrascale.common.logging import configure_logging, get_logger
from terrascale.common.metrics import metrics_router
from terrascale.common.middleware import RequestContextMiddleware
from terrascale.common.overload import LoadShedder
from terrascale.common.ratelimit import RateLimiter
from terrascale.common.regions import MisdirectedWriteGuard
from terrascale.common.security import (
    BodySizeLimitMiddleware,
    ProblemCORSMiddleware,
    SecurityHeadersMiddleware,
    secure_server_errors,
)
from terrascale.common.settings import ServiceSettings
from terrascale.common.tracing import (
    create_tracer_provider,
    instrument_app,
    instrument_clients,
    uninstrument_clients,
)

logger = get_logger(__name__)

# A service's own long-lived resource (an HTTP client pool, a pub/sub connection): entered once
# the shared ones are on app.state, exited after background work stopped and before they close.
Resource = Callable[[FastAPI], AbstractAsyncContextManager[None]]


class Banner(BaseModel):
    service: str
    version: str
    docs: str
    openapi: str
    health: str
    ready: str
    metrics: str


def create_service_app(
    *,
    settings: ServiceSettings,
    title: str,
    version: str,
    description: str,
    routers: Sequence[APIRouter],
    token_public_key: Ed25519PublicKey | None = None,
    background: Sequence[BackgroundWork] = (),
    resources: Sequence[Resource] = (),
    long_lived_paths: Sequence[str] = (),
) -> FastAPI:
    """``token_public_key`` verifies access tokens; by default it comes from JWT_PUBLIC_KEY.
    ``background`` runs beside the HTTP server for the app's lifetime (outbox relay, consumers);
    ``resources`` are the service's own, which it keeps on ``app.state``; ``long_lived_paths``
    (streams) are never shed under load."""
    configure_logging(level=settings.log_level, renderer=settings.log_renderer)
    tracer_provider = create_tracer_provider(settings, version=version)

    lifespan = _lifespan(
        settings=settings,
        version=version,
        tracer_provider=tracer_provider,
        resources=resources,
        background=background,
    )
    app = FastAPI(
        title=title,
        version=version,
        description=description,
        lifespan=lifespan,
        debug=False,  # DEBUG changes log output, never error bodies
    )
    app.state.settings = settings
    app.state.tracer_provider = tracer_provider
    if token_public_key is None and settings.jwt_public_key is not None:
        token_public_key = load_public_key(settings.jwt_public_key)
    app.state.token_verifier = (
        None
        if token_public_key is None
        else AccessTokenVerifier(
            token_public_key, issuer=settings.jwt_issuer, audience=settings.jwt_audience
        )
    )
    # Outermost last: the request log sees every answer (shed ones included), CORS and security
    # headers reach a 413 and a 503 too.
    app.add_middleware(
        LoadShedder,
        max_in_flight=settings.max_in_flight_requests,
        exempt_paths=long_lived_paths,
    )
    app.add_middleware(BodySizeLimitMiddleware, max_bytes=settings.max_request_body_bytes)
    if settings.cors_allow_origins:  # none: no CORS headers, and a preflight is a 405
        app.add_middleware(ProblemCORSMiddleware, allow_origins=settings.cors_allow_origins)
    if (regions := settings.region_map) is not None:
        app.add_middleware(MisdirectedWriteGuard, regions=regions)
    app.add_middleware(SecurityHeadersMiddleware)
    app.add_middleware(RequestContextMiddleware)
    install_error_handlers(app)
    secure_server_errors(app)

    @app.get("/", tags=["operations"], summary="Service banner with links")
    async def banner() -> Banner:
        return Banner(
            service=settings.service_name,
            version=version,
            docs="/docs",
            openapi="/openapi.json",
            health="/health",
            ready="/ready",
            metrics="/metrics",
        )

    app.include_router(health_router())
    app.include_router(metrics_router())
    for router in routers:
        app.include_router(router)
    # The routes as declared: what a 405's Allow header is computed from.
    app.state.api_routes = [
        route for router in routers for route in router.routes if isinstance(route, Route)
    ]

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=app.routes,
            )
            app.openapi_schema = _problems_as_problem_json(schema)
        return app.openapi_schema

    app.openapi = openapi
    if tracer_provider is not None:
        instrument_app(app, tracer_provider)
    return app


def _lifespan(
    *,
    settings: ServiceSettings,
    version: str,
    tracer_provider: TracerProvider | None,
    resources: Sequence[Resource],
    background: Sequence[BackgroundWork],
) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    """Shared resources first, then the service's own, then background work; stopped in the
    reverse order, so nothing outlives what it uses."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncGenerator[None]:
        engine = create_engine(settings, pool_name="primary")
        redis = create_redis(settings)
        if tracer_provider is not None:
            instrument_clients(tracer_provider, engine)
        app.state.engine = engine
        app.state.session_factory = create_session_factory(engine)
        app.state.redis = redis
        app.state.cache = Cache.from_settings(redis, settings)
        app.state.rate_limiter = RateLimiter.from_settings(redis, settings)
        checks: dict[str, ReadinessCheck] = {"postgres": lambda: ping(engine), "redis": redis.ping}
        app.state.readiness_checks = checks
        try:
            async with AsyncExitStack() as own_resources:
                for resource in resources:
                    await own_resources.enter_async_context(resource(app))
                stop = asyncio.Event()
                tasks = run_background(app, background, stop)
                logger.info("service started", service=settings.service_name, version=version)
                try:
                    yield
                finally:
                    await stop_background(
                        tasks, stop, grace_seconds=settings.graceful_timeout_seconds
                    )
        finally:
            await redis.aclose()
            await engine.dispose()
            if tracer_provider is not None:
                uninstrument_clients()
                tracer_provider.shutdown()
            logger.info("service stopped", service=settings.service_name)

    return lifespan


def _problems_as_problem_json(schema: dict[str, Any]) -> dict[str, Any]:
    """Document every 4xx/5xx body as ``application/problem+json`` with the Problem schema,
    including the 422 FastAPI adds on its own, since that is what the handlers send; and the 400
    and 413 every operation with a body can answer (a body that is not parseable JSON, a body
    over MAX_REQUEST_BODY_BYTES)."""
    problem_ref = {"$ref": "#/components/schemas/Problem"}
    for path_item in schema.get("paths", {}).values():
        for operation in path_item.values():
            responses = operation.setdefault("responses", {})
            if "requestBody" in operation:
                responses.setdefault("400", {"description": "Malformed request body"})
                responses.setdefault("413", {"description": "Request body too large"})
            for status, response in responses.items():
                if status.isdigit() and int(status) >= 400:  # noqa: PLR2004
                    response["content"] = {PROBLEM_MEDIA_TYPE: {"schema": problem_ref}}
    components = schema.get("components", {}).get("schemas", {})
    for unused in ("HTTPValidationError", "ValidationError"):
        components.pop(unused, None)
    return schema
