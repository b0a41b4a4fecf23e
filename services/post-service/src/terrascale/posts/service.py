"""Post Service business rules: writing, reading, deleting posts and user timelines. No HTTP."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from terrascale.common.auth import ForbiddenError
from terrascale.common.events import PostCreated, PostDeleted
from terrascale.common.ids import decode_id
from terrascale.common.sharding import ShardedDatabases
from terrascale.posts.cache import PostCache
from terrascale.posts.errors import (
    IdempotencyKeyBusyError,
    IdempotencyKeyReusedError,
    InvalidFieldError,
    PostNotFoundError,
)
from terrascale.posts.models import Post
from terrascale.posts.repository import KnownUserRepository, PostRepository
from terrascale.posts.schemas import CachedPost, Mention, PostRead
from terrascale.posts.text import extract

# Two attempts: the second only runs if a key expired and was purged between our two statements.
CLAIM_ATTEMPTS = 2


@dataclass(frozen=True, slots=True)
class CreatedPost:
    post: PostRead
    replayed: bool  # True when an Idempotency-Key retry returned the post created before


def to_read(post: Post) -> PostRead:
    return PostRead.model_validate(post, from_attributes=True)


def cache_entry(post: Post) -> CachedPost:
    visible = post.deleted_at is None
    return CachedPost(version=post.version, post=to_read(post) if visible else None)


def request_digest(*, text: str, reply_to: int | None) -> bytes:
    """What a retry must repeat: the validated request, so ``"reply_to": "1"`` and ``1`` agree."""
    canonical = json.dumps({"text": text, "reply_to": reply_to}, sort_keys=True)
    return hashlib.sha256(canonical.encode()).digest()


async def create_post(
    *,
    shards: ShardedDatabases,
    cache: PostCache,
    author_id: int,
    text: str,
    reply_to: int | None,
    idempotency_key: str | None,
    idempotency_ttl: timedelta,
) -> CreatedPost:
    """``text`` is already validated and NFC-normalised. The post is written on its author's
    shard, in one transaction with its event. With an idempotency key, a retry returns the
    original post even if the request would now fail (its reply target deleted, say)."""
    digest = request_digest(text=text, reply_to=reply_to)
    if idempotency_key is not None and (
        replayed := await _replay(
            shards, author_id=author_id, key=idempotency_key, digest=digest, ttl=idempotency_ttl
        )
    ):
        return replayed
    # Reads of other databases come first: a second connection taken while the write holds one
    # could starve the pool under load.
    reply_to_author_id = None if reply_to is None else await visible_author(shards, reply_to)
    if reply_to is not None and reply_to_author_id is None:
        raise InvalidFieldError(
            ("body", "reply_to"), f"No post with id {reply_to} exists (or it was deleted)."
        )
    entities = extract(text)
    mentions = await resolve_mentions(shards, entities.mentions)

    shard = decode_id(author_id).shard  # the post's id names its author's shard
    async with shards.writing(author_id) as session:
        posts = PostRepository(session)
        post_id: int | None = None
        if idempotency_key is not None:
            claimed = await _claim_or_replay(
                posts,
                author_id=author_id,
                key=idempotency_key,
                digest=digest,
                shard=shard,
                ttl=idempotency_ttl,
            )
            if isinstance(claimed, CreatedPost):
                return claimed
            post_id = claimed
        post = await posts.insert(
            post_id=post_id,
            shard=shard,
            author_id=author_id,
            text=text,
            reply_to=reply_to,
            mentions=[mention.model_dump() for mention in mentions],
            hashtags=entities.hashtags,
            urls=entities.urls,
        )
        await posts.record(
            PostCreated(
                post_id=post.id,
                author_id=author_id,
                text=text,
                reply_to=reply_to,
                reply_to_author_id=reply_to_author_id,
                mention_ids=[mention.user_id for mention in mentions],
                mention_usernames=[mention.username for mention in mentions],
                hashtags=entities.hashtags,
            )
        )
    created = to_read(post)
    # Committed: timelines hydrate a new post right after post.created, so have it cached.
    await cache.store_many({post.id: CachedPost(version=post.version, post=created)})
    return CreatedPost(post=created, replayed=False)


async def _replay(
    shards: ShardedDatabases, *, author_id: int, key: str, digest: bytes, ttl: timedelta
) -> CreatedPost | None:
    """The post an earlier request with this key created, if it committed and the key has not
    expired."""
    async with shards.reading(author_id) as session:
        stored = await PostRepository(session).get_by_idempotency_key(
            author_id=author_id, key=key, ttl=ttl
        )
    if stored is None:
        return None
    return _replayed(stored, digest)


def _replayed(stored: tuple[bytes, Post], digest: bytes) -> CreatedPost:
    stored_digest, post = stored
    if stored_digest != digest:
        raise IdempotencyKeyReusedError(
            "This Idempotency-Key was already used with a different request."
        )
    return CreatedPost(post=to_read(post), replayed=True)


async def visible_author(shards: ShardedDatabases, post_id: int) -> int | None:
    """The author of a visible post, read on the post's own shard."""
    async with shards.reading(post_id) as session:
        return await PostRepository(session).visible_author(post_id)


async def _claim_or_replay(
    posts: PostRepository, *, author_id: int, key: str, digest: bytes, shard: int, ttl: timedelta
) -> int | CreatedPost:
    """The id the new post must get, or the post an earlier request with this key created."""
    for _ in range(CLAIM_ATTEMPTS):
        post_id = await posts.claim_idempotency_key(
            author_id=author_id, key=key, request_hash=digest, shard=shard, ttl=ttl
        )
        if post_id is not None:
            return post_id
        stored = await posts.get_by_idempotency_key(author_id=author_id, key=key)
        if stored is not None:
            return _replayed(stored, digest)
    raise IdempotencyKeyBusyError("This Idempotency-Key is being reclaimed; retry the request.")


async def resolve_mentions(shards: ShardedDatabases, usernames: Sequence[str]) -> list[Mention]:
    """Known users in the order they were mentioned; unknown names stay plain text. The
    projection of users is not sharded: it lives in the service's own database."""
    if not usernames:
        return []
    async with shards.primary.session_factory() as session:
        users = await KnownUserRepository(session).find_by_usernames(usernames)
    known = {user.username_lower: user for user in users}
    found = (known.get(username.lower()) for username in usernames)
    return [Mention(user_id=user.id, username=user.username) for user in found if user]


async def get_posts(
    *, shards: ShardedDatabases, cache: PostCache, post_ids: Sequence[int]
) -> list[PostRead]:
    """Visible posts in the order asked, each once; unknown and deleted ids are left out. One
    MGET, then one query per shard database for what the cache lacked (all at once), whose
    answers (tombstones for deleted posts included) go back to the cache in one round trip."""
    wanted = list(dict.fromkeys(post_ids))
    entries = await cache.get_many(wanted)
    missing = [post_id for post_id in wanted if post_id not in entries]
    if missing:
        found = await shards.read_each(
            missing, lambda session, ids: PostRepository(session).get_many(ids)
        )
        fresh = {post.id: cache_entry(post) for post in found}
        await cache.store_many(fresh)
        entries.update(fresh)
    return [
        entry.post
        for post_id in wanted
        if (entry := entries.get(post_id)) is not None and entry.post is not None
    ]


async def get_post(*, shards: ShardedDatabases, cache: PostCache, post_id: int) -> PostRead:
    found = await get_posts(shards=shards, cache=cache, post_ids=[post_id])
    if not found:
        raise PostNotFoundError(f"No post has id {post_id}.")
    return found[0]


async def delete_post(
    *, shards: ShardedDatabases, cache: PostCache, post_id: int, user_id: int
) -> None:
    """Soft delete by the author, on the post's shard. The cached copy is dropped before the
    commit and replaced by a tombstone of the new version after it, so no reader can cache
    the post again."""
    async with shards.writing(post_id) as session:
        posts = PostRepository(session)
        post = await posts.soft_delete(post_id=post_id, author_id=user_id)
        if post is None:
            existing = await posts.get(post_id)
            if existing is None or existing.deleted_at is not None:
                raise PostNotFoundError(f"No post has id {post_id}.")
            raise ForbiddenError("Only the author of a post can delete it.")
        await posts.record(PostDeleted(post_id=post.id, author_id=post.author_id))
        await cache.delete(post.id)
    await cache.store_many({post.id: cache_entry(post)})


async def list_user_posts(
    *,
    shards: ShardedDatabases,
    user_id: int,
    limit: int,
    max_id: int | None = None,
    since_id: int | None = None,
    min_id: int | None = None,
) -> list[PostRead]:
    async with shards.reading(user_id) as session:
        page = await PostRepository(session).timeline(
            author_id=user_id, limit=limit, max_id=max_id, since_id=since_id, min_id=min_id
        )
    return [to_read(post) for post in page]


async def purge_expired_idempotency_keys(
    *, posts: PostRepository, ttl: timedelta, now: datetime | None = None, batch_size: int = 1000
) -> int:
    """Delete one batch of keys older than ``ttl`` from one database; returns how many.
    (Expired keys are also taken over by a new claim, so purging only reclaims space.)"""
    before = (now or datetime.now(UTC)) - ttl
    return await posts.purge_idempotency_keys(before=before, limit=batch_size)
