"""User Service business rules. Plain functions with keyword-only arguments; no HTTP here."""

from __future__ import annotations

import random

from pydantic import ValidationError

from terrascale.common.cache import Cache
from terrascale.users.errors import UsernameTakenError, UserNotFoundError
from terrascale.users.models import UserAccount
from terrascale.users.repository import UserRepository
from terrascale.users.schemas import UserPublic, UserRead


def choose_shard(logical_shards: int) -> int:
    """New users spread evenly over the logical shards; the shard is encoded in their id."""
    return random.randrange(logical_shards)  # noqa: S311 - placement, not security


async def create_user(
    *, repository: UserRepository, username: str, logical_shards: int
) -> UserAccount:
    user = await repository.insert_unless_taken(
        username=username, shard=choose_shard(logical_shards)
    )
    if user is None:
        raise UsernameTakenError(f"The username {username!r} is already taken.")
    return user


async def get_user(*, repository: UserRepository, cache: Cache, user_id: int) -> UserRead:
    """Cache-aside read. Only users that exist are cached: a read racing a create may see
    "not found", and caching that answer would hide the new user until the TTL expired."""
    key = cache.key("user", user_id)
    cached = await cache.get(key)
    if cached is not None:
        try:
            public = UserPublic.model_validate_json(cached)
        except ValidationError:
            await cache.delete(key)  # unreadable entry (older format?): refill from the database
        else:
            return UserRead(**public.model_dump(), cached=True)

    user = await repository.get(user_id)
    if user is None:
        raise UserNotFoundError(f"No user has id {user_id}.")
    public = UserPublic.model_validate(user, from_attributes=True)
    await cache.set(key, public.model_dump_json())
    return UserRead(**public.model_dump(), cached=False)
