"""Post Service request dependencies."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header, Path, Request

from terrascale.common.ids import MAX_ID
from terrascale.common.sharding import ShardedDatabases
from terrascale.posts.cache import PostCache
from terrascale.posts.config import PostSettings
from terrascale.posts.schemas import IDEMPOTENCY_KEY_PATTERN

# Dependencies are coroutines, even those that do no I/O: FastAPI runs a plain function in a
# worker thread, a round trip that costs more than the function.


async def _settings(request: Request) -> PostSettings:
    return request.app.state.settings


async def _shards(request: Request) -> ShardedDatabases:
    return request.app.state.shards


async def _post_cache(request: Request) -> PostCache:
    # The app's Cache itself, not CacheDep: that one is a plain function (a thread hop).
    return PostCache(request.app.state.cache)


SettingsDep = Annotated[PostSettings, Depends(_settings)]
# The service opens its transactions itself: which database depends on the shard of the data.
ShardsDep = Annotated[ShardedDatabases, Depends(_shards)]
PostCacheDep = Annotated[PostCache, Depends(_post_cache)]
PostIdPath = Annotated[
    int,
    Path(ge=1, le=MAX_ID, description="The post's id, in decimal.", examples=["1234567890123"]),
]
UserIdPath = Annotated[
    int,
    Path(ge=1, le=MAX_ID, description="The user's id, in decimal.", examples=["1234567890123"]),
]
IdempotencyKeyHeader = Annotated[
    str | None,
    Header(
        pattern=IDEMPOTENCY_KEY_PATTERN,
        description="1-255 visible ASCII characters, unique per request (a UUID, say). A retry "
        "with the same key returns the post the first request created (for 24 hours) instead of "
        "creating another.",
    ),
]
