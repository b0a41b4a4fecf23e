"""Replicas of users homed in other regions, kept from the ``user.*`` events the replicator
copies here (docs/regions.md). They make remote authors resolvable here (profiles, timeline
hydration, follow checks); they never sign in here and are never changed here."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from terrascale.common.cache import Cache
from terrascale.common.events import Envelope, Handler, UserCreated, UserUpdated, idempotent_handler
from terrascale.common.logging import get_logger
from terrascale.users.repository import UserRepository
from terrascale.users.service import user_cache_key

logger = get_logger(__name__)

CONSUMER_GROUP = "user-service"
CATEGORIES = ("user",)


async def apply_replicated(session: AsyncSession, envelope: Envelope) -> None:
    users = UserRepository(session)
    data = envelope.payload()
    if isinstance(data, UserCreated):
        if not await users.store_replica(user_id=data.user_id, username=data.username):
            logger.warning(
                "replicated user not stored: id known or username taken here",
                user_id=data.user_id,
                username=data.username,
                home_region=envelope.replicated_from,
            )
    elif isinstance(data, UserUpdated):
        await users.update_replica(data.user_id, display_name=data.display_name, bio=data.bio)


def replicated_users_handler(
    session_factory: async_sessionmaker[AsyncSession], cache: Cache
) -> Handler:
    """Applies each replicated ``user.*`` event once (inbox); this region's own user events are
    acknowledged untouched, since this service produced them."""
    apply_once = idempotent_handler(session_factory, group=CONSUMER_GROUP, apply=apply_replicated)

    async def handle(envelope: Envelope) -> None:
        if envelope.replicated_from is None:
            return
        await apply_once(envelope)
        if envelope.type == UserUpdated.event_type:
            await cache.delete(user_cache_key(cache, int(envelope.subject)))

    return handle
