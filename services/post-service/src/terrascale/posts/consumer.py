"""The worker's event handling: the projection of users that mentions resolve against."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from terrascale.common.events import Envelope, Handler, UserCreated, idempotent_handler
from terrascale.common.logging import get_logger
from terrascale.posts.repository import KnownUserRepository

logger = get_logger(__name__)

CONSUMER_GROUP = "post-service"
CATEGORIES = ("user",)


async def apply_user_created(session: AsyncSession, envelope: Envelope) -> None:
    created = envelope.data_as(UserCreated)
    added = await KnownUserRepository(session).add(
        user_id=created.user_id, username=created.username
    )
    if not added:
        # Usernames are unique at the source, so this is a replay of a lost inbox row or a
        # name reused after an account was removed; the first mapping stays.
        logger.warning(
            "user already known; user.created ignored",
            user_id=created.user_id,
            username=created.username,
        )


def user_projection_handler(session_factory: async_sessionmaker[AsyncSession]) -> Handler:
    """Applies each ``user.created`` once (the inbox makes redeliveries no-ops). Other user
    events carry nothing mentions need, so they are acknowledged without a transaction."""
    apply_once = idempotent_handler(session_factory, group=CONSUMER_GROUP, apply=apply_user_created)

    async def handle(envelope: Envelope) -> None:
        if envelope.type == UserCreated.event_type:
            await apply_once(envelope)

    return handle
