"""OpenTelemetry traces, exported over OTLP/HTTP only when OTLP_ENDPOINT is set."""

from __future__ import annotations

from fastapi import FastAPI
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
from opentelemetry.instrumentation.redis import RedisInstrumentor
from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor
from opentelemetry.sdk.resources import SERVICE_NAME, SERVICE_VERSION, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from sqlalchemy.ext.asyncio import AsyncEngine

from terrascale.common.settings import ServiceSettings

TRACES_PATH = "/v1/traces"


def traces_url(endpoint: str) -> str:
    """OTLP_ENDPOINT is the collector's base URL (``http://collector:4318``); a full
    ``.../v1/traces`` URL is accepted as well."""
    endpoint = endpoint.rstrip("/")
    return endpoint if endpoint.endswith(TRACES_PATH) else endpoint + TRACES_PATH


def create_tracer_provider(settings: ServiceSettings, *, version: str) -> TracerProvider | None:
    if settings.otlp_endpoint is None:
        return None
    resource = Resource.create({SERVICE_NAME: settings.otel_service_name, SERVICE_VERSION: version})
    provider = TracerProvider(resource=resource)
    exporter = OTLPSpanExporter(endpoint=traces_url(str(settings.otlp_endpoint)), timeout=5)
    provider.add_span_processor(BatchSpanProcessor(exporter, schedule_delay_millis=1000))
    return provider


def instrument_app(app: FastAPI, provider: TracerProvider) -> None:
    FastAPIInstrumentor.instrument_app(
        app, tracer_provider=provider, excluded_urls="health,ready,metrics"
    )


def instrument_clients(provider: TracerProvider, engine: AsyncEngine) -> None:
    SQLAlchemyInstrumentor().instrument(engine=engine.sync_engine, tracer_provider=provider)
    # The redis instrumentation patches the client class: one provider per process at a time.
    RedisInstrumentor().instrument(tracer_provider=provider)


def uninstrument_clients() -> None:
    SQLAlchemyInstrumentor().uninstrument()
    RedisInstrumentor().uninstrument()
