"""User Service business rules for accounts and profiles. No HTTP here."""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

import orjson
from pydantic import ValidationError

from terrascale.common.cache import Cache
from terrascale.common.events import UserCreated, UserUpdated
from terrascale.users.errors import UsernameTakenError, UserNotFoundError
from terrascale.users.models import UserAccount
from terrascale.users.passwords import hash_password
from terrascale.users.repository import UserRepository
from terrascale.users.schemas import CachedUser, UserPublic, UserRead


def choose_shard(logical_shards: int, home_shards: range | None = None) -> int:
    """New users spread evenly over the logical shards; the shard is encoded in their id. With
    regions, only over this region's shards: the shard is what homes a user in a region."""
    shards = range(logical_shards) if home_shards is None else home_shards
    return random.choice(shards)  # noqa: S311 - placement, not security


def user_cache_key(cache: Cache, user_id: int) -> str:
    return cache.key("user", user_id)


def public_profile(user: UserAccount) -> UserPublic:
    return UserPublic.model_validate(user, from_attributes=True)


def cache_entry(user: UserAccount) -> str:
    return CachedUser(version=user.version, user=public_profile(user)).model_dump_json()


async def create_user(
    *,
    repository: UserRepository,
    username: str,
    password: str | None,
    logical_shards: int,
    home_shards: range | None = None,
) -> UserAccount:
    password_hash = None if password is None else await hash_password(password)
    user = await repository.insert_unless_taken(
        username=username,
        shard=choose_shard(logical_shards, home_shards),
        password_hash=password_hash,
    )
    if user is None:
        raise UsernameTakenError(f"The username {username!r} is already taken.")
    await repository.record(UserCreated(user_id=user.id, username=user.username))
    return user


async def get_user(*, repository: UserRepository, cache: Cache, user_id: int) -> UserRead:
    """Cache-aside read. Only users that exist are cached: a read racing a create may see
    "not found", and caching that answer would hide the new user until the TTL expired."""
    cached = _parse_entry(await cache.get(user_cache_key(cache, user_id)))
    if cached is not None:
        return UserRead(**cached.user.model_dump(), cached=True)
    return await load_user(repository=repository, cache=cache, user_id=user_id)


async def get_cached_user_json(*, cache: Cache, user_id: int) -> bytes | None:
    """The cache-hit half of ``get_user``, as the JSON of its ``UserRead`` answer; None on a
    miss. The hottest read skips the models: ``cache_entry`` wrote the profile from a validated
    model, so its fields pass through as they are. An entry whose field names differ (another
    format) counts as a miss, so the refill replaces it."""
    entry = await cache.get(user_cache_key(cache, user_id))
    if entry is None:
        return None
    try:
        profile = orjson.loads(entry)["user"]
    except (orjson.JSONDecodeError, KeyError, TypeError):
        return None
    if not isinstance(profile, dict) or profile.keys() != _PUBLIC_FIELDS:
        return None
    return orjson.dumps({**profile, "cached": True})  # pyright: ignore[reportUnknownArgumentType]


async def load_user(*, repository: UserRepository, cache: Cache, user_id: int) -> UserRead:
    """The cache-miss half of ``get_user``: read the row, then fill the cache."""
    user = await repository.get(user_id)
    if user is None:
        raise UserNotFoundError(f"No user has id {user_id}.")
    key = user_cache_key(cache, user_id)
    await cache.set_if_newer(key, cache_entry(user), version=user.version)
    return UserRead(**public_profile(user).model_dump(), cached=False)


async def get_users(
    *, repository: UserRepository, cache: Cache, user_ids: Sequence[int]
) -> list[UserPublic]:
    """Batch lookup in the order asked; unknown ids are left out. One MGET, then one query for
    whatever the cache did not have."""
    wanted = list(dict.fromkeys(user_ids))
    entries = await cache.get_many([user_cache_key(cache, user_id) for user_id in wanted])
    found: dict[int, UserPublic] = {}
    for entry in entries:
        if (cached := _parse_entry(entry)) is not None:
            found[cached.user.id] = cached.user
    missing = [user_id for user_id in wanted if user_id not in found]
    if missing:
        loaded = await repository.get_many(missing)
        found.update((user.id, public_profile(user)) for user in loaded)
        await cache.set_many_if_newer(
            {user_cache_key(cache, user.id): (cache_entry(user), user.version) for user in loaded}
        )
    return [found[user_id] for user_id in wanted if user_id in found]


async def get_user_by_username(*, repository: UserRepository, username: str) -> UserPublic:
    user = await repository.get_by_username(username)
    if user is None:
        raise UserNotFoundError(f"No user is called {username!r}.")
    return public_profile(user)


async def update_profile(
    *, repository: UserRepository, cache: Cache, user_id: int, changes: dict[str, Any]
) -> UserAccount:
    """Apply the changes and drop the cached copy before the commit, so reads go to the
    database; the caller stores the new version in the cache once the commit is done."""
    user = await repository.update_profile(user_id, changes)
    if user is None:
        raise UserNotFoundError(f"No user has id {user_id}.")
    if changes:
        await repository.record(
            UserUpdated(user_id=user.id, display_name=user.display_name, bio=user.bio)
        )
    await cache.delete(user_cache_key(cache, user_id))
    return user


_PUBLIC_FIELDS = UserPublic.model_fields.keys()


def _parse_entry(entry: bytes | None) -> CachedUser | None:
    if entry is None:
        return None
    try:
        return CachedUser.model_validate_json(entry)
    except ValidationError:
        return None  # an unreadable entry (older format?) is a miss; the refill replaces it
