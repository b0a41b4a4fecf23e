"""Event backbone settings, read from the environment like ServiceSettings.

Kept apart from ServiceSettings so a service opts in by loading this model next to its own.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from terrascale.common.settings import ConfigError, describe_validation_error


class EventSettings(BaseSettings):
    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        case_sensitive=False,
        extra="ignore",
        frozen=True,
    )

    event_bus: Literal["redis", "nats"] = "redis"
    nats_url: str = "nats://localhost:4222"
    event_key_prefix: str = Field(
        default="terrascale:",
        description="Prefix of every stream, lease and dead-letter name (Redis keys, NATS names).",
    )
    event_partitions: Annotated[int, Field(ge=1, le=1024)] = Field(
        default=8,
        description="Partitions per category. Changing it moves subjects between partitions: "
        "drain the streams first.",
    )
    event_stream_maxlen: Annotated[int, Field(ge=1)] = Field(
        default=100_000,
        description="Approximate entries kept per partition; must stay well above any backlog.",
    )
    event_claim_idle_seconds: Annotated[float, Field(gt=0, le=3600)] = Field(
        default=30.0,
        description="An unacknowledged entry idle this long is taken over by another consumer; "
        "also the TTL of a partition lease (Redis) and the ack wait (NATS).",
    )
    event_max_deliveries: Annotated[int, Field(ge=1, le=1000)] = 5
    event_retry_delay_seconds: Annotated[float, Field(ge=0, le=600)] = Field(
        default=1.0, description="Pause before redelivering a failed entry, times the attempt."
    )
    event_poll_seconds: Annotated[float, Field(gt=0, le=60)] = Field(
        default=0.5, description="How long an idle consumer blocks on a read (bounds shutdown)."
    )
    event_read_count: Annotated[int, Field(ge=1, le=10_000)] = 16
    event_relay_batch_size: Annotated[int, Field(ge=1, le=10_000)] = 256
    event_relay_poll_seconds: Annotated[float, Field(gt=0, le=60)] = 0.05
    event_inbox_retention_hours: Annotated[float, Field(ge=1, le=24 * 365)] = Field(
        default=7 * 24,
        description="How long a consumer remembers an event it applied. A copy delivered later "
        "is applied again: keep it above the longest redelivery or region outage to ride out.",
    )


def load_event_settings(**overrides: object) -> EventSettings:
    """Build settings, turning a validation failure into one readable ConfigError."""
    try:
        return EventSettings(**overrides)  # pyright: ignore[reportArgumentType]
    except ValidationError as exc:
        raise ConfigError(describe_validation_error(exc)) from None
