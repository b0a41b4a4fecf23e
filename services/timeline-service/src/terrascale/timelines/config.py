"""Timeline Service settings: the shared ones with this service's defaults, the services that
hydrate a page, and the knobs of fan-out."""

from __future__ import annotations

from functools import lru_cache
from typing import Annotated, ClassVar

from pydantic import AnyHttpUrl, Field

from terrascale.common.settings import ServiceSettings, load_settings


class TimelineSettings(ServiceSettings):
    service_name: ClassVar[str] = "timeline-service"
    otel_service_name: str = "timeline-service"
    postgres_db: str = "terrascale_timelines"
    cache_key_prefix: str = "terrascale:timelines:"
    port: Annotated[int, Field(ge=1, le=65535)] = 5003

    post_service_url: AnyHttpUrl = Field(
        default=AnyHttpUrl("http://localhost:5002"),
        description="Base URL of the Post Service, which hydrates a page of post ids.",
    )
    user_service_url: AnyHttpUrl = Field(
        default=AnyHttpUrl("http://localhost:5000"),
        description="Base URL of the User Service, which hydrates the authors of a page.",
    )
    upstream_timeout_seconds: Annotated[float, Field(gt=0, le=30)] = Field(
        default=2.0, description="Whole-request budget of one hydration call."
    )
    timeline_max_posts: Annotated[int, Field(ge=20, le=10_000)] = Field(
        default=800, description="Posts kept in each home timeline; older ones are trimmed."
    )
    celebrity_follower_threshold: Annotated[int, Field(ge=0)] = Field(
        default=10_000,
        description="Authors with more followers than this are not fanned out: their posts are "
        "merged into their followers' pages at read time.",
    )
    timeline_active_days: Annotated[int, Field(ge=1, le=365)] = Field(
        default=30,
        description="A home timeline nobody read for this long is dropped and gets no fan-out; "
        "it is rebuilt on the next read.",
    )
    post_cache_seconds: Annotated[int, Field(ge=1)] = Field(
        default=86_400,
        description="How long a hydrated post is kept in this service's cache. Bodies never "
        "change and deleted posts are filtered out by the projections, so this only bounds "
        "memory.",
    )
    author_cache_seconds: Annotated[int, Field(ge=1)] = Field(
        default=300,
        description="How long an author's public profile is kept in this service's cache; "
        "user.updated drops it sooner.",
    )
    fanout_batch_size: Annotated[int, Field(ge=1, le=10_000)] = Field(
        default=1_000,
        description="Followers read and written per fan-out batch: one SQL page, one script call.",
    )


@lru_cache
def get_settings() -> TimelineSettings:
    return load_settings(TimelineSettings)
