"""User Service settings: the shared ones with this service's defaults, plus token issuing."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Annotated, ClassVar, Self

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pydantic import Field, SecretStr, model_validator

from terrascale.common.keys import load_private_key, public_key_pem
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

    jwt_private_key: SecretStr | None = Field(
        default=None,
        description="PEM Ed25519 private key that signs access tokens. Unset: a key is generated "
        "at start-up, so tokens do not survive a restart.",
    )
    jwt_private_key_file: Path | None = Field(
        default=None, description="Read JWT_PRIVATE_KEY from this file (e.g. a mounted secret)."
    )
    access_token_ttl_seconds: Annotated[int, Field(ge=30, le=24 * 3600)] = 900
    refresh_token_ttl_seconds: Annotated[int, Field(ge=300, le=365 * 24 * 3600)] = 30 * 24 * 3600
    login_max_failures: Annotated[int, Field(ge=1, le=1000)] = 5
    login_lockout_seconds: Annotated[int, Field(ge=1, le=24 * 3600)] = 900

    @model_validator(mode="after")
    def _check_signing_key(self) -> Self:
        if self.jwt_private_key is not None:
            private_key = load_private_key(self.jwt_private_key.get_secret_value())
            if self.jwt_public_key is not None and (
                public_key_pem(private_key).strip() != self.jwt_public_key.strip()
            ):
                raise ValueError("JWT_PUBLIC_KEY is not the public half of JWT_PRIVATE_KEY")
        return self

    @property
    def signing_key(self) -> Ed25519PrivateKey | None:
        if self.jwt_private_key is None:
            return None
        return load_private_key(self.jwt_private_key.get_secret_value())


@lru_cache
def get_settings() -> UserSettings:
    return load_settings(UserSettings)
