"""Graph Service settings: the shared ones with this service's defaults, plus the User Service
it asks about users the projection has not seen yet."""

from __future__ import annotations

from functools import lru_cache
from typing import Annotated, ClassVar

from pydantic import AnyHttpUrl, Field

from terrascale.common.settings import load_settings
from terrascale.common.sharding import ShardedServiceSettings


class GraphSettings(ShardedServiceSettings):
    service_name: ClassVar[str] = "graph-service"
    otel_service_name: str = "graph-service"
    postgres_db: str = "terrascale_graph"
    cache_key_prefix: str = "terrascale:graph:"
    port: Annotated[int, Field(ge=1, le=65535)] = 5001

    user_service_url: AnyHttpUrl = Field(
        default=AnyHttpUrl("http://localhost:5000"),
        description="Base URL of the User Service, asked about users no user.created event has "
        "announced yet.",
    )
    user_service_timeout_seconds: Annotated[float, Field(gt=0, le=30)] = Field(
        default=1.0, description="Whole-request budget of one User Service lookup."
    )


@lru_cache
def get_settings() -> GraphSettings:
    return load_settings(GraphSettings)
