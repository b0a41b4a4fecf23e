"""Graph Service business rules: follow, unfollow, lists, counts and the user projection.
No HTTP here."""

from __future__ import annotations

from collections.abc import Sequence

from terrascale.common.events import Envelope, FollowCreated, FollowDeleted, UserCreated
from terrascale.common.ids import decode_id
from terrascale.graph.directory import UserDirectory
from terrascale.graph.errors import SelfFollowError, UserNotFoundError
from terrascale.graph.pagination import Position, decode_cursor, encode_cursor
from terrascale.graph.repository import FollowRepository, KnownUserRepository
from terrascale.graph.schemas import FollowCounts, FollowItem, FollowPage, Relationship


async def ensure_user_exists(
    *, known_users: KnownUserRepository, directory: UserDirectory, user_id: int
) -> None:
    """The projection answers almost always; a miss asks the User Service and remembers a yes."""
    if await known_users.exists(user_id):
        return
    user = await directory.find(user_id)
    if user is None:
        raise UserNotFoundError(f"No user has id {user_id}.")
    await known_users.add(
        user_id=user.id, username=user.username, created_at=decode_id(user.id).created_at
    )


async def follow(
    *,
    follows: FollowRepository,
    known_users: KnownUserRepository,
    directory: UserDirectory,
    user_id: int,
    target_id: int,
) -> Relationship:
    """Idempotent: following again changes nothing and emits nothing."""
    if user_id == target_id:
        raise SelfFollowError("A user cannot follow themselves.")
    await ensure_user_exists(known_users=known_users, directory=directory, user_id=target_id)
    _, followed_by = await follows.relationship(user_id=user_id, other_id=target_id)
    if await follows.insert(follower_id=user_id, followee_id=target_id):
        await follows.record(FollowCreated(follower_id=user_id, followee_id=target_id))
        # Last before the commit: a popular user's counter row is a hot lock, held until then.
        await follows.count(follower_id=user_id, followee_id=target_id, delta=1)
    return Relationship(
        user_id=user_id, target_id=target_id, following=True, followed_by=followed_by
    )


async def follow_many(
    *,
    follows: FollowRepository,
    known_users: KnownUserRepository,
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
    if missing := await known_users.missing(targets):
        found = await directory.find_many(missing)
        # In id order: remembering a user inserts a row that concurrent imports may insert too,
        # and one order for every transaction means none waits on another in a cycle (a
        # deadlock).
        for target_id in missing:
            user = found.get(target_id)
            if user is None:
                raise UserNotFoundError(f"No user has id {target_id}.")
            await known_users.add(
                user_id=user.id, username=user.username, created_at=decode_id(user.id).created_at
            )
    followed_by = await follows.followers_among(user_id, targets)
    inserted = await follows.insert_many(follower_id=user_id, followee_ids=targets)
    await follows.record(
        *(FollowCreated(follower_id=user_id, followee_id=target_id) for target_id in inserted)
    )
    if inserted:  # last before the commit, as in follow
        await follows.count_new_follows(follower_id=user_id, followee_ids=inserted)
    return [
        Relationship(
            user_id=user_id,
            target_id=target_id,
            following=True,
            followed_by=target_id in followed_by,
        )
        for target_id in targets
    ]


async def unfollow(
    *,
    follows: FollowRepository,
    known_users: KnownUserRepository,
    directory: UserDirectory,
    user_id: int,
    target_id: int,
) -> Relationship:
    """Idempotent. An existing follow is removed without asking about the target (it existed);
    with nothing to remove, an unknown target is still a 404."""
    if user_id == target_id:
        raise SelfFollowError("A user cannot unfollow themselves.")
    _, followed_by = await follows.relationship(user_id=user_id, other_id=target_id)
    if await follows.delete(follower_id=user_id, followee_id=target_id):
        await follows.record(FollowDeleted(follower_id=user_id, followee_id=target_id))
        await follows.count(follower_id=user_id, followee_id=target_id, delta=-1)
    else:
        await ensure_user_exists(known_users=known_users, directory=directory, user_id=target_id)
    return Relationship(
        user_id=user_id, target_id=target_id, following=False, followed_by=followed_by
    )


async def relationship(*, follows: FollowRepository, user_id: int, other_id: int) -> Relationship:
    following, followed_by = await follows.relationship(user_id=user_id, other_id=other_id)
    return Relationship(
        user_id=user_id, target_id=other_id, following=following, followed_by=followed_by
    )


async def counts(*, follows: FollowRepository, user_id: int) -> FollowCounts:
    followers, following = await follows.counts(user_id)
    return FollowCounts(user_id=user_id, followers=followers, following=following)


async def list_followers(
    *, follows: FollowRepository, user_id: int, limit: int, cursor: str | None
) -> FollowPage:
    after = None if cursor is None else decode_cursor(cursor)
    # One row more than asked tells whether a next page exists, without counting.
    rows = await follows.followers_page(user_id, after=after, limit=limit + 1)
    return _page(rows, limit)


async def list_following(
    *, follows: FollowRepository, user_id: int, limit: int, cursor: str | None
) -> FollowPage:
    after = None if cursor is None else decode_cursor(cursor)
    rows = await follows.following_page(user_id, after=after, limit=limit + 1)
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
