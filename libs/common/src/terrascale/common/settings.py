"""Configuration shared by every service, read from the environment (names case-insensitive)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, ClassVar, Literal, Self, TypeVar

from pydantic import (
    AnyHttpUrl,
    Field,
    IPvAnyNetwork,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from terrascale.common.keys import load_public_key, read_key_file
from terrascale.common.regions import RegionMap, RegionMapError

Port = Annotated[int, Field(ge=1, le=65535)]
Seconds = Annotated[float, Field(gt=0, le=3600)]
PerMinute = Annotated[int, Field(ge=0, le=1_000_000)]
# Lists read from the environment as comma-separated text, not JSON.
CommaSeparated = NoDecode
_ORIGIN = re.compile(r"^https?://[^/?#\s]+$")


# Settings that may also come from a file named by <NAME>_FILE (Docker and Kubernetes secrets).
KEY_FIELDS = ("jwt_public_key", "jwt_private_key")


class ConfigError(Exception):
    """Raised when settings cannot be loaded; the message names each bad variable."""


class ServiceSettings(BaseSettings):
    """Settings every service has. A service subclasses this and sets its own defaults."""

    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        case_sensitive=False,
        extra="ignore",
        frozen=True,
    )

    service_name: ClassVar[str] = "terrascale-service"  # fixed per service, not configurable

    postgres_host: str = "localhost"
    postgres_port: Port = 5432
    postgres_db: str = "terrascale"
    postgres_user: str = "postgres"
    postgres_password: SecretStr = SecretStr("postgres")
    database_url: str | None = Field(
        default=None,
        description="Full SQLAlchemy URL; overrides the POSTGRES_* parts when set.",
    )
    # 5 services x 2 workers + 4 event workers, 6 connections each, plus the timeline
    # service's read pool in each of its 2 workers: 96, within PostgreSQL's default 100.
    db_pool_size: Annotated[int, Field(ge=1, le=200)] = 4
    db_max_overflow: Annotated[int, Field(ge=0, le=200)] = 2
    db_connect_timeout_seconds: Seconds = 3.0
    db_statement_timeout_seconds: Seconds = 5.0

    redis_host: str = "localhost"
    redis_port: Port = 6379
    redis_db: Annotated[int, Field(ge=0, le=15)] = 0
    redis_password: SecretStr | None = None
    redis_timeout_seconds: Seconds = 0.25
    cache_ttl_seconds: Annotated[int, Field(ge=1, le=7 * 24 * 3600)] = 60
    cache_key_prefix: str = "terrascale:"
    cache_retry_after_seconds: Seconds = 1.0

    ready_timeout_seconds: Seconds = 1.0

    host: str = "0.0.0.0"
    port: Port = 8000
    web_concurrency: Annotated[int, Field(ge=1, le=64)] = 2
    # Per Gunicorn worker; past it, requests are answered 503 at once (0: no limit).
    max_in_flight_requests: Annotated[int, Field(ge=0, le=100_000)] = 64
    graceful_timeout_seconds: Annotated[int, Field(ge=1, le=300)] = 20

    debug: bool = False
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"
    log_format: Literal["json", "console"] | None = Field(
        default=None, description="Defaults to console when DEBUG is true, JSON otherwise."
    )

    otlp_endpoint: AnyHttpUrl | None = None
    otel_service_name: str = "terrascale-service"

    jwt_public_key: str | None = Field(
        default=None,
        description="PEM Ed25519 public key that verifies access tokens (every service).",
    )
    jwt_public_key_file: Path | None = Field(
        default=None, description="Read JWT_PUBLIC_KEY from this file (e.g. a mounted secret)."
    )
    jwt_issuer: str = "terrascale"
    jwt_audience: str = "terrascale"

    rate_limit_writes_per_minute: PerMinute = Field(
        default=300,
        description="Writes (POST, PUT, PATCH, DELETE) per signed-in user per minute, in "
        "bursts of up to that many; 0 disables.",
    )
    rate_limit_signin_per_minute: PerMinute = Field(
        default=120,
        description="Sign-ups, sign-ins and token refreshes per client IP per minute; 0 disables.",
    )
    trusted_proxies: Annotated[list[IPvAnyNetwork], CommaSeparated] = Field(
        default_factory=list,
        description="Addresses or networks of proxies whose X-Forwarded-For is believed.",
    )
    max_request_body_bytes: Annotated[int, Field(ge=1024, le=16 * 1024 * 1024)] = 64 * 1024
    cors_allow_origins: Annotated[list[str], CommaSeparated] = Field(
        default_factory=list,
        description="Origins browsers may call the API from; empty: no cross-origin access.",
    )

    region: str | None = Field(
        default=None,
        description="The region this process serves (one of REGIONS); unset: a single region.",
    )
    regions: str | None = Field(
        default=None,
        description="Logical shards of each region, e.g. eu=0-511,us=512-1023 (docs/regions.md).",
    )

    @field_validator("trusted_proxies", "cors_allow_origins", mode="before")
    @classmethod
    def _split_commas(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("cors_allow_origins")
    @classmethod
    def _check_origins(cls, origins: list[str]) -> list[str]:
        for origin in origins:
            if origin != "*" and not _ORIGIN.match(origin):
                raise ValueError(f"{origin!r} is not an origin like https://app.example.com")
        return origins

    @model_validator(mode="before")
    @classmethod
    def _normalise_log_level(cls, data: object) -> object:
        if isinstance(data, dict) and isinstance(data.get("log_level"), str):
            return {**data, "log_level": data["log_level"].upper()}
        return data

    @model_validator(mode="after")
    def _check_database_url(self) -> Self:
        if self.database_url is not None:
            try:
                make_url(self.database_url)
            except ArgumentError as exc:
                raise ValueError("DATABASE_URL is not a valid SQLAlchemy URL") from exc
        return self

    @model_validator(mode="before")
    @classmethod
    def _read_key_files(cls, data: object) -> object:
        """``<NAME>_FILE`` fills ``<NAME>`` from a file when ``<NAME>`` itself is not set."""
        if not isinstance(data, dict):
            return data
        values = dict(data)
        for name in KEY_FIELDS:
            path = values.get(f"{name}_file")
            if path and not values.get(name):
                values[name] = read_key_file(Path(path))
        return values

    @model_validator(mode="after")
    def _check_jwt_public_key(self) -> Self:
        if self.jwt_public_key is not None:
            load_public_key(self.jwt_public_key)  # raises ValueError naming the problem
        return self

    @model_validator(mode="after")
    def _check_regions(self) -> Self:
        if (self.region is None) != (self.regions is None):
            raise ValueError("REGION and REGIONS are set together, or neither")
        try:
            _ = self.region_map
        except RegionMapError as exc:
            raise ValueError(str(exc)) from exc
        return self

    @property
    def region_map(self) -> RegionMap | None:
        """The split of shards between regions; None when this is the only region."""
        if self.region is None or self.regions is None:
            return None
        return RegionMap.parse(self.regions, self.region)

    @property
    def sqlalchemy_url(self) -> URL:
        """The asyncpg URL: DATABASE_URL when given (any driver is switched to asyncpg)."""
        if self.database_url:
            return make_url(self.database_url).set(drivername="postgresql+asyncpg")
        return URL.create(
            "postgresql+asyncpg",
            username=self.postgres_user,
            password=self.postgres_password.get_secret_value() or None,
            host=self.postgres_host,
            port=self.postgres_port,
            database=self.postgres_db,
        )

    @property
    def log_renderer(self) -> Literal["json", "console"]:
        if self.log_format is not None:
            return self.log_format
        return "console" if self.debug else "json"


SettingsT = TypeVar("SettingsT", bound=ServiceSettings)


def load_settings(settings_class: type[SettingsT], **overrides: object) -> SettingsT:
    """Build settings, turning a validation failure into one readable ConfigError."""
    try:
        return settings_class(**overrides)  # pyright: ignore[reportArgumentType]
    except ValidationError as exc:
        raise ConfigError(describe_validation_error(exc)) from None


def describe_validation_error(exc: ValidationError) -> str:
    lines = ["invalid configuration:"]
    for error in exc.errors():
        variable = "_".join(str(part) for part in error["loc"]).upper()
        shown = "" if _is_secret(variable) or not variable else f" (got {error.get('input')!r})"
        lines.append(f"  {variable or 'settings'}: {error['msg']}{shown}")
    return "\n".join(lines)


def _is_secret(variable: str) -> bool:
    return any(word in variable for word in ("PASSWORD", "SECRET", "KEY", "URL"))
