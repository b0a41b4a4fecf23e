"""Prometheus metrics: every name a TerraScale process exports, and the ``/metrics`` endpoint.

Gunicorn runs several worker processes per service, and a scrape reaches one of them. In
prometheus_client's multiprocess mode each process writes its values to files under
``PROMETHEUS_MULTIPROC_DIR`` and ``/metrics`` sums them, so the figures are the service's, not
one worker's. The library picks its storage when first imported, so the variable must be in the
environment when the process starts: the images, the launcher and the test system set it. The
process that serves empties the folder first (``reset_multiprocess_dir``), so a restart does not
add the previous run's counts.

Names follow Prometheus conventions: base units (seconds), ``_total`` for counters, and labels
with few values (the route template, never the raw path).
"""

from __future__ import annotations

import os
from pathlib import Path

from fastapi import APIRouter, Response
from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4

MULTIPROCESS_DIR_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"
# prometheus_client opens a file for each metric made below: the folder must exist first.
if _configured_dir := os.environ.get(MULTIPROCESS_DIR_VARIABLE):
    Path(_configured_dir).mkdir(parents=True, exist_ok=True)

# From 1 ms (a cached read) to 10 s (past every timeout we set).
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
# Event delay spans retries and outages: up to ten minutes.
DELAY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 600.0)

HTTP_REQUESTS = Counter(
    "terrascale_http_requests_total",
    "HTTP requests answered, by route template and status code.",
    ["method", "route", "status"],
)
HTTP_REQUEST_DURATION = Histogram(
    "terrascale_http_request_duration_seconds",
    "Time from a request's arrival to the end of its response body.",
    ["method", "route"],
    buckets=LATENCY_BUCKETS,
)
HTTP_REQUESTS_SHED = Counter(
    "terrascale_http_requests_shed_total",
    "Requests answered 503 at once because the process had its limit of requests in flight.",
)
HTTP_REQUESTS_IN_FLIGHT = Gauge(
    "terrascale_http_requests_in_flight",
    "Requests being served right now.",
    multiprocess_mode="livesum",
)

DB_POOL_CONNECTIONS = Gauge(
    "terrascale_db_pool_connections",
    "Database connections a pool holds: open (in use or idle) and in_use (checked out).",
    ["pool", "state"],
    multiprocess_mode="livesum",
)
DB_POOL_MAX_CONNECTIONS = Gauge(
    "terrascale_db_pool_max_connections",
    "The most connections a pool may open (pool size plus overflow).",
    ["pool"],
    multiprocess_mode="livesum",
)

CACHE_LOOKUPS = Counter(
    "terrascale_cache_lookups_total",
    "Cache lookups by cache and result: hit, miss, or error (Redis down; counted as a miss).",
    ["cache", "result"],
)

OUTBOX_UNPUBLISHED = Gauge(
    "terrascale_outbox_unpublished_events",
    "Committed events the outbox relay has not yet published (sampled by the leading relay).",
    multiprocess_mode="livemax",
)
OUTBOX_OLDEST_UNPUBLISHED_AGE = Gauge(
    "terrascale_outbox_oldest_unpublished_age_seconds",
    "Age of the oldest unpublished outbox event: how far the relay lags behind commits.",
    multiprocess_mode="livemax",
)
OUTBOX_PUBLISHED = Counter(
    "terrascale_outbox_published_events_total",
    "Events the outbox relay published (a republish after a crash counts again).",
)

EVENTS_HANDLED = Counter(
    "terrascale_events_handled_total",
    "Event deliveries handled by a consumer group, by outcome: ack, retry or dead (letter).",
    ["group", "type", "outcome"],
)
EVENT_HANDLING_DURATION = Histogram(
    "terrascale_event_handling_duration_seconds",
    "Time a consumer spent on one delivery, waits for an unavailable dependency included.",
    ["group", "type"],
    buckets=LATENCY_BUCKETS,
)
EVENT_DELAY = Histogram(
    "terrascale_event_delay_seconds",
    "From an event's creation (its producer's commit) to its handling by a consumer group; "
    "for the timeline group and post.created, the post-to-timeline delay.",
    ["group", "type"],
    buckets=DELAY_BUCKETS,
)
CONSUMER_LAG = Gauge(
    "terrascale_consumer_lag_events",
    "Events a consumer group has not yet acknowledged (unread plus in hand), per category.",
    ["group", "category"],
    multiprocess_mode="livemax",
)

TIMELINE_FANOUT_INSERTS = Counter(
    "terrascale_timeline_fanout_inserts_total",
    "Post ids written into home timelines by fan-out on write.",
)
TIMELINE_FANOUT_DURATION = Histogram(
    "terrascale_timeline_fanout_duration_seconds",
    "Time to fan one post out to every follower's home timeline.",
    buckets=LATENCY_BUCKETS,
)

SSE_CONNECTIONS = Gauge(
    "terrascale_sse_connections",
    "Open server-sent-event streams of live notifications.",
    multiprocess_mode="livesum",
)


def cache_lookup_counters(cache: str) -> dict[str, Counter]:
    """``cache``'s three lookup counters, by result (hit, miss, error), made once."""
    return {result: CACHE_LOOKUPS.labels(cache, result) for result in ("hit", "miss", "error")}


def multiprocess_dir() -> Path | None:
    value = os.environ.get(MULTIPROCESS_DIR_VARIABLE)
    return Path(value) if value else None


def reset_multiprocess_dir() -> None:
    """Create the folder, or empty it of an earlier run's files; call before serving. This
    process's own files stay: its metrics, made at import, keep writing to them."""
    directory = multiprocess_dir()
    if directory is None:
        return
    directory.mkdir(parents=True, exist_ok=True)
    own = str(os.getpid())
    for path in directory.glob("*.db"):  # named <kind>_<pid>.db
        if path.stem.rpartition("_")[2] != own:
            path.unlink(missing_ok=True)


def mark_process_dead(pid: int) -> None:
    """Drop a dead worker's live gauges (in-flight requests, pool connections, SSE streams);
    its counters stay, as totals must not fall."""
    if multiprocess_dir() is not None:
        multiprocess.mark_process_dead(pid)


def exposition() -> bytes:
    if multiprocess_dir() is None:
        return generate_latest(REGISTRY)
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)
    return generate_latest(registry)


# The classic text format, which every Prometheus version reads; our names need nothing newer.
CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4


def metrics_router() -> APIRouter:
    router = APIRouter(tags=["operations"])

    # A plain function: FastAPI runs it in a thread, so reading the files never blocks the loop.
    @router.get(
        "/metrics",
        summary="Prometheus metrics of every process of this service",
        response_class=Response,
        responses={200: {"content": {CONTENT_TYPE: {}}}},
    )
    def metrics() -> Response:
        return Response(exposition(), media_type=CONTENT_TYPE)

    return router
