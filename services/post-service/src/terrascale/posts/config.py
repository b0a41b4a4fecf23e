"""Post Service settings: the shared ones with this service's defaults, the shard databases,
and idempotency keys."""

from __future__ import annotations

from functools import lru_cache
from typing import Annotated, ClassVar

from pydantic import Field

from terrascale.common.settings import load_settings
from terrascale.common.sharding import ShardedServiceSettings


class PostSettings(ShardedServiceSettings):
    service_name: ClassVar[str] = "post-service"
    otel_service_name: str = "post-service"
    postgres_db: str = "terrascale_posts"
    cache_key_prefix: str = "terrascale:posts:"
    port: Annotated[int, Field(ge=1, le=65535)] = 5002

    idempotency_key_ttl_seconds: Annotated[int, Field(ge=60, le=30 * 24 * 3600)] = Field(
        default=24 * 3600,
        description="How long an Idempotency-Key is remembered; after that it may be reused.",
    )
    idempotency_purge_interval_seconds: Annotated[float, Field(gt=0, le=24 * 3600)] = Field(
        default=3600.0, description="How often expired idempotency keys are deleted."
    )


@lru_cache
def get_settings() -> PostSettings:
    return load_settings(PostSettings)
