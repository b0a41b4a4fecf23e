"""User Service application factory (``uvicorn --factory terrascale.users.app:create_app``)."""

from __future__ import annotations

from fastapi import FastAPI
from pydantic import SecretStr

from terrascale.common.app import create_service_app
from terrascale.common.auth import AccessTokenIssuer
from terrascale.common.background import BackgroundWork, event_consumer, outbox_relay
from terrascale.common.events import EventSettings, load_event_settings
from terrascale.common.keys import generate_private_key_pem
from terrascale.common.logging import get_logger
from terrascale.users import __version__
from terrascale.users.auth_router import router as auth_router
from terrascale.users.config import UserSettings, get_settings
from terrascale.users.replication import CATEGORIES, CONSUMER_GROUP, replicated_users_handler
from terrascale.users.router import router as users_router

logger = get_logger(__name__)

DESCRIPTION = """\
Accounts and profiles of TerraScale, and sign-in. Reads are cache-aside through Redis: `cached`
tells whether an answer came from the cache. Ids are 64-bit, time-sortable, and sent as strings.
Access tokens are EdDSA JWTs that every service verifies with the public key.
Errors are RFC 9457 `application/problem+json` documents.
"""


def with_signing_key(settings: UserSettings) -> UserSettings:
    """Settings that carry a signing key: the configured one, or a fresh one (with a warning:
    tokens it signs stop working when the process restarts). Call it before Gunicorn forks so
    every worker signs with the same key."""
    if settings.jwt_private_key is not None:
        return settings
    logger.warning(
        "JWT_PRIVATE_KEY is not set; signing with a key generated for this run only",
        service=settings.service_name,
    )
    return settings.model_copy(update={"jwt_private_key": SecretStr(generate_private_key_pem())})


def create_app(
    settings: UserSettings | None = None, events: EventSettings | None = None
) -> FastAPI:
    settings = with_signing_key(settings or get_settings())
    events = events or load_event_settings()
    signing_key = settings.signing_key
    assert signing_key is not None  # noqa: S101 - with_signing_key guarantees it
    app = create_service_app(
        settings=settings,
        title="TerraScale User Service",
        version=__version__,
        description=DESCRIPTION,
        routers=[users_router, auth_router],
        token_public_key=signing_key.public_key(),
        background=[outbox_relay(events), *_replication(settings, events)],
    )
    app.state.token_issuer = AccessTokenIssuer(
        private_key=signing_key,
        issuer=settings.jwt_issuer,
        audience=settings.jwt_audience,
        ttl_seconds=settings.access_token_ttl_seconds,
    )
    return app


def _replication(settings: UserSettings, events: EventSettings) -> list[BackgroundWork]:
    """With regions, this service keeps replicas of the users homed elsewhere. It has no worker
    process of its own, so the API processes consume (the group shares the partitions)."""
    if settings.region_map is None:
        return []
    return [
        event_consumer(
            events,
            group=CONSUMER_GROUP,
            categories=CATEGORIES,
            handler=lambda app: replicated_users_handler(
                app.state.session_factory, app.state.cache
            ),
        )
    ]
