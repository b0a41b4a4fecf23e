"""Load shedding: past its limit of requests in flight, a process answers 503 at once.

Without a limit, a process under more load than it can serve queues every request in its event
loop: latency grows without bound, every client times out, and memory grows with the queue.
With one, the requests admitted are served at the speed the process can manage and the rest are
told to come back (``Retry-After``) within a millisecond. The limit is per process (per Gunicorn
worker); probes, scrapes and long-lived streams are never shed.
"""

from __future__ import annotations

from collections.abc import Iterable

from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from terrascale.common.errors import PROBLEM_TYPE_PREFIX, problem_response
from terrascale.common.metrics import HTTP_REQUESTS_SHED

OPERATIONS_PATHS = frozenset({"/health", "/ready", "/metrics"})
RETRY_AFTER_SECONDS = "1"


class LoadShedder:
    def __init__(
        self, app: ASGIApp, *, max_in_flight: int, exempt_paths: Iterable[str] = ()
    ) -> None:
        """``max_in_flight`` 0 turns shedding off; ``exempt_paths`` (a stream that stays open
        for minutes, say) are served whatever the load, beside the operations endpoints."""
        self.app = app
        self.max_in_flight = max_in_flight
        self.exempt_paths = OPERATIONS_PATHS | frozenset(exempt_paths)
        self.in_flight = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self.max_in_flight == 0 or scope["path"] in self.exempt_paths:
            await self.app(scope, receive, send)
            return
        if self.in_flight >= self.max_in_flight:
            HTTP_REQUESTS_SHED.inc()
            response = problem_response(
                Request(scope),
                status=503,
                type_uri=f"{PROBLEM_TYPE_PREFIX}overloaded",
                detail="The service is at capacity; retry shortly.",
                headers={"Retry-After": RETRY_AFTER_SECONDS},
            )
            await response(scope, receive, send)
            return
        # One event loop per process: no other coroutine runs between the check and this.
        self.in_flight += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.in_flight -= 1
