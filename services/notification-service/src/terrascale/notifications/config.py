"""Notification Service settings: the shared ones with this service's defaults, plus the pace
of the live stream."""

from __future__ import annotations

from functools import lru_cache
from typing import Annotated, ClassVar

from pydantic import Field

from terrascale.common.settings import ServiceSettings, load_settings


class NotificationSettings(ServiceSettings):
    service_name: ClassVar[str] = "notification-service"
    otel_service_name: str = "notification-service"
    postgres_db: str = "terrascale_notifications"
    cache_key_prefix: str = "terrascale:notifications:"
    port: Annotated[int, Field(ge=1, le=65535)] = 5004

    notification_heartbeat_seconds: Annotated[float, Field(gt=0, le=300)] = Field(
        default=15.0,
        description="Seconds between heartbeat comments on an idle stream, so proxies and "
        "load balancers keep the connection open.",
    )
    notification_poll_seconds: Annotated[float, Field(gt=0, le=300)] = Field(
        default=5.0,
        description="While the Redis wake-up channel is down, each stream polls PostgreSQL "
        "this often instead.",
    )


@lru_cache
def get_settings() -> NotificationSettings:
    return load_settings(NotificationSettings)
