"""The worker's event handling: ``user.created`` fills the ``known_user`` projection."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from terrascale.common.events import Envelope, Handler, UserCreated, idempotent_handler
from terrascale.graph import service as graph_service
from terrascale.graph.repository import KnownUserRepository

CONSUMER_GROUP = "graph-service"
CATEGORIES = ("user",)


async def _apply(session: AsyncSession, envelope: Envelope) -> None:
    await graph_service.project_user_created(
        known_users=KnownUserRepository(session), envelope=envelope
    )


def user_events_handler(session_factory: async_sessionmaker[AsyncSession]) -> Handler:
    """Handles ``user.created`` once per event id (inbox row and projection row commit
    together); other ``user.*`` events carry nothing this service keeps and are acknowledged
    without touching the database."""
    project = idempotent_handler(session_factory, group=CONSUMER_GROUP, apply=_apply)

    async def handle(envelope: Envelope) -> None:
        if envelope.type == UserCreated.event_type:
            await project(envelope)

    return handle
