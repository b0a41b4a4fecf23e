"""User Service settings: the shared ones with this service's defaults."""

from __future__ import annotations

from functools import lru_cache
from typing import Annotated, ClassVar

from pydantic import Field

from terrascale.common.settings import ServiceSettings, load_settings


class UserSettings(ServiceSettings):
    service_name: ClassVar[str] = "user-service"
    otel_service_name: str = "user-service"
    postgres_db: str = "terrascale_users"
    cache_key_prefix: str = "terrascale:users:"
    port: Annotated[int, Field(ge=1, le=65535)] = 5000
    logical_shards: Annotated[int, Field(ge=1, le=8192)] = Field(
        default=1024,
        description="Logical shards a new user is spread over; the shard is part of the user's id.",
    )


@lru_cache
def get_settings() -> UserSettings:
    return load_settings(UserSettings)
