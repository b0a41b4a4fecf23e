"""Production HTTP server: Gunicorn managing Uvicorn workers, configured from settings."""

from __future__ import annotations

import gc
from collections.abc import Callable
from typing import Any

from gunicorn.app.base import BaseApplication
from gunicorn.glogging import Logger as GunicornLogger
from starlette.types import ASGIApp

from terrascale.common.logging import configure_logging, get_logger
from terrascale.common.metrics import (
    MULTIPROCESS_DIR_VARIABLE,
    mark_process_dead,
    multiprocess_dir,
    reset_multiprocess_dir,
)
from terrascale.common.settings import ServiceSettings

logger = get_logger(__name__)


def _structlog_logger_class(settings: ServiceSettings) -> type[GunicornLogger]:
    class StructlogGunicornLogger(GunicornLogger):
        """Route Gunicorn's own messages through our log format instead of its handlers."""

        def setup(self, cfg: Any) -> None:
            configure_logging(level=settings.log_level, renderer=settings.log_renderer)
            self.error_log.handlers.clear()
            self.error_log.propagate = True
            self.error_log.setLevel(settings.log_level)
            self.access_log.disabled = True

    return StructlogGunicornLogger


class GunicornServer(BaseApplication):
    def __init__(self, app_factory: Callable[[], ASGIApp], options: dict[str, Any]) -> None:
        self.app_factory = app_factory
        self.options = options
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            self.cfg.set(key, value)  # pyright: ignore[reportOptionalMemberAccess]

    def load(self) -> ASGIApp:
        # Runs in each worker after the fork, so event loops and pools are never shared.
        app = self.app_factory()
        # The modules, routes and schemas loaded so far live as long as the worker. Freezing them
        # keeps the collector from walking them all again in every full collection: in a worker
        # under load those took about 0.2 s each and set the p99 latency.
        gc.freeze()
        return app


def _forget_worker(_server: Any, worker: Any) -> None:
    mark_process_dead(worker.pid)


def serve(settings: ServiceSettings, app_factory: Callable[[], ASGIApp]) -> None:
    if multiprocess_dir() is None and settings.web_concurrency > 1:
        logger.warning(
            "multiprocess metrics are off: /metrics shows one worker's figures only",
            unset_variable=MULTIPROCESS_DIR_VARIABLE,
            web_concurrency=settings.web_concurrency,
        )
    reset_multiprocess_dir()  # before any worker exists to write into it
    GunicornServer(
        app_factory,
        {
            "bind": f"{settings.host}:{settings.port}",
            "workers": settings.web_concurrency,
            "worker_class": "uvicorn_worker.UvicornWorker",
            "graceful_timeout": settings.graceful_timeout_seconds,
            "timeout": 30,
            "keepalive": 5,
            "logger_class": _structlog_logger_class(settings),
            "proc_name": settings.service_name,
            # Gunicorn's control socket sits at one path per user; services would collide on it.
            "control_socket_disable": True,
            # Uvicorn would otherwise rewrite the client address from X-Forwarded-For for any
            # peer on 127.0.0.1; TRUSTED_PROXIES alone decides whom to believe (ratelimit.py).
            "forwarded_allow_ips": "",
            "child_exit": _forget_worker,
        },
    ).run()
