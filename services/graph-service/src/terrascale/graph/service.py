"""Graph Service business rules: follow, unfollow, lists, counts and the user projection.
No HTTP here."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from terrascale.common.db import transaction
from terrascale.common.events import Envelope, FollowCreated, FollowDeleted, UserCreated
from terrascale.common.ids import decode_id
from terrascale.common.logging import get_logger
from terrascale.common.sharding import ShardedDatabases
from terrascale.graph.directory import UserDirectory
from terrascale.graph.errors import SelfFollowError, UserNotFoundError
from terrascale.graph.pagination import Position, decode_cursor, encode_cursor
from terrascale.graph.repository import FollowRepository, KnownUserRepository
from terrascale.graph.schemas import FollowCounts, FollowItem, FollowPage, Relationship

logger = get_logger(__name__)


async def ensure_user_exists(
    *, shards: ShardedDatabases, directory: UserDirectory, user_id: int
) -> None:
    """The projection answers almost always; a miss asks the User Service and remembers a yes.
    The projection is not sharded: it lives in the service's own database."""
    async with transaction(shards.primary.session_factory) as session:
        known_users = KnownUserRepository(session)
        if await known_users.exists(user_id):
            return
        user = await directory.find(user_id)
        if user is None:
            raise UserNotFoundError(f"No user has id {user_id}.")
        await known_users.add(
            user_id=user.id, username=user.username, created_at=decode_id(user.id).created_at
        )


async def follow(
    *, shards: ShardedDatabases, directory: UserDirectory, user_id: int, target_id: int
) -> Relationship:
    """Idempotent: following again changes nothing and emits nothing. The follow is written on
    the follower's shard with its event; the followee's side follows right after."""
    if user_id == target_id:
        raise SelfFollowError("A user cannot follow themselves.")
    await ensure_user_exists(shards=shards, directory=directory, user_id=target_id)
    async with shards.writing(user_id) as session:
        follows = FollowRepository(session)
        _, followed_by = await follows.relationship(user_id=user_id, other_id=target_id)
        if await follows.insert(follower_id=user_id, followee_id=target_id):
            await follows.record(FollowCreated(follower_id=user_id, followee_id=target_id))
            await follows.count(user_id, following=1)
    await mirror_follows_soon(shards, follower_id=user_id, followee_ids=[target_id])
    return Relationship(
        user_id=user_id, target_id=target_id, following=True, followed_by=followed_by
    )


async def follow_many(
    *,
    shards: ShardedDatabases,
    directory: UserDirectory,
    user_id: int,
    target_ids: Sequence[int],
) -> list[Relationship]:
    """Follow several users in one transaction (a follow-list import): all or nothing, each
    follow exactly as ``follow`` makes it (same rows, same event), in a handful of statements
    rather than a handful per user."""
    targets = list(dict.fromkeys(target_ids))
    if user_id in targets:
        raise SelfFollowError("A user cannot follow themselves.")
    await _ensure_users_exist(shards=shards, directory=directory, user_ids=targets)
    async with shards.writing(user_id) as session:
        follows = FollowRepository(session)
        followed_by = await follows.followers_among(user_id, targets)
        inserted = await follows.insert_many(follower_id=user_id, followee_ids=targets)
        await follows.record(
            *(FollowCreated(follower_id=user_id, followee_id=target_id) for target_id in inserted)
        )
        if inserted:
            await follows.count(user_id, following=len(inserted))
    await mirror_follows_soon(shards, follower_id=user_id, followee_ids=targets)
    return [
        Relationship(
            user_id=user_id,
            target_id=target_id,
            following=True,
            followed_by=target_id in followed_by,
        )
        for target_id in targets
    ]


async def _ensure_users_exist(
    *, shards: ShardedDatabases, directory: UserDirectory, user_ids: Sequence[int]
) -> None:
    async with transaction(shards.primary.session_factory) as session:
        known_users = KnownUserRepository(session)
        if missing := await known_users.missing(user_ids):
            found = await directory.find_many(missing)
            # In id order: remembering a user inserts a row that concurrent imports may insert
            # too, and one order for every transaction means none waits on another in a cycle.
            for target_id in missing:
                user = found.get(target_id)
                if user is None:
                    raise UserNotFoundError(f"No user has id {target_id}.")
                await known_users.add(
                    user_id=user.id,
                    username=user.username,
                    created_at=decode_id(user.id).created_at,
                )


async def unfollow(
    *, shards: ShardedDatabases, directory: UserDirectory, user_id: int, target_id: int
) -> Relationship:
    """Idempotent. An existing follow is removed without asking about the target (it existed);
    with nothing to remove, an unknown target is still a 404."""
    if user_id == target_id:
        raise SelfFollowError("A user cannot unfollow themselves.")
    async with shards.writing(user_id) as session:
        follows = FollowRepository(session)
        _, followed_by = await follows.relationship(user_id=user_id, other_id=target_id)
        removed = await follows.delete(follower_id=user_id, followee_id=target_id)
        if removed:
            await follows.record(FollowDeleted(follower_id=user_id, followee_id=target_id))
            await follows.count(user_id, following=-1)
    if not removed:
        await ensure_user_exists(shards=shards, directory=directory, user_id=target_id)
    await mirror_follows_soon(shards, follower_id=user_id, followee_ids=[target_id])
    return Relationship(
        user_id=user_id, target_id=target_id, following=False, followed_by=followed_by
    )


async def mirror_follows(
    shards: ShardedDatabases, *, follower_id: int, followee_ids: Sequence[int]
) -> None:
    """Make each followee's side (its followers list and count, on its shard) agree with the
    follower's side. Idempotent and order-free: it copies the truth as it is now, so running it
    late, twice or after a newer change is harmless. Each database's followees in turn, the
    databases at once."""

    async def on_database(group: list[int]) -> None:
        for followee_id in group:
            await _mirror(shards, follower_id=follower_id, followee_id=followee_id)

    groups = shards.group_by_database(followee_ids)
    await asyncio.gather(*(on_database(group) for group in groups.values()))


async def _mirror(shards: ShardedDatabases, *, follower_id: int, followee_id: int) -> None:
    async with shards.writing(followee_id) as session:
        followee_side = FollowRepository(session)
        await followee_side.lock_pair(follower_id=follower_id, followee_id=followee_id)
        since = await _followed_since(
            shards, session, follower_id=follower_id, followee_id=followee_id
        )
        if since is not None:
            if await followee_side.add_follower(
                followee_id=followee_id, follower_id=follower_id, since=since
            ):
                await followee_side.count(followee_id, followers=1)
        elif await followee_side.remove_follower(followee_id=followee_id, follower_id=follower_id):
            await followee_side.count(followee_id, followers=-1)


async def _followed_since(
    shards: ShardedDatabases, session: AsyncSession, *, follower_id: int, followee_id: int
) -> datetime | None:
    """The truth, read in ``session`` when both users' shards share its database: a second
    connection from the same pool while holding one could starve the pool under load."""
    if shards.database_for(follower_id) is shards.database_for(followee_id):
        return await FollowRepository(session).followed_since(
            follower_id=follower_id, followee_id=followee_id
        )
    async with shards.reading(follower_id) as truth:
        return await FollowRepository(truth).followed_since(
            follower_id=follower_id, followee_id=followee_id
        )


async def mirror_follows_soon(
    shards: ShardedDatabases, *, follower_id: int, followee_ids: Sequence[int]
) -> None:
    """``mirror_follows`` right after the change, so the followee's lists are current when the
    request answers. The change is committed by then: if this fails (the followee's database
    is down, the process dies), the worker's handling of the change's event does it later."""
    try:
        await mirror_follows(shards, follower_id=follower_id, followee_ids=followee_ids)
    except Exception as exc:  # noqa: BLE001 - committed already; the event's handler repairs it
        logger.warning("followee side not updated; the event's handler will", error=repr(exc))


async def relationship(*, shards: ShardedDatabases, user_id: int, other_id: int) -> Relationship:
    """Both directions from rows ``user_id`` owns: one database."""
    async with shards.reading(user_id) as session:
        following, followed_by = await FollowRepository(session).relationship(
            user_id=user_id, other_id=other_id
        )
    return Relationship(
        user_id=user_id, target_id=other_id, following=following, followed_by=followed_by
    )


async def counts(*, shards: ShardedDatabases, user_id: int) -> FollowCounts:
    async with shards.reading(user_id) as session:
        followers, following = await FollowRepository(session).counts(user_id)
    return FollowCounts(user_id=user_id, followers=followers, following=following)


async def list_followers(
    *, shards: ShardedDatabases, user_id: int, limit: int, cursor: str | None
) -> FollowPage:
    after = None if cursor is None else decode_cursor(cursor)
    # One row more than asked tells whether a next page exists, without counting.
    async with shards.reading(user_id) as session:
        rows = await FollowRepository(session).followers_page(user_id, after=after, limit=limit + 1)
    return _page(rows, limit)


async def list_following(
    *, shards: ShardedDatabases, user_id: int, limit: int, cursor: str | None
) -> FollowPage:
    after = None if cursor is None else decode_cursor(cursor)
    async with shards.reading(user_id) as session:
        rows = await FollowRepository(session).following_page(user_id, after=after, limit=limit + 1)
    return _page(rows, limit)


def _page(rows: list[Position], limit: int) -> FollowPage:
    shown = rows[:limit]
    return FollowPage(
        items=[FollowItem(user_id=row.user_id, followed_at=row.created_at) for row in shown],
        next_cursor=encode_cursor(shown[-1]) if len(rows) > limit else None,
    )


async def project_user_created(*, known_users: KnownUserRepository, envelope: Envelope) -> None:
    """Remember a new user, so following them needs no call to the User Service."""
    user = envelope.data_as(UserCreated)
    await known_users.add(
        user_id=user.user_id, username=user.username, created_at=decode_id(user.user_id).created_at
    )
