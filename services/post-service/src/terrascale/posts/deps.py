"""Post Service request dependencies."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Header, Path, Request

from terrascale.common.deps import SessionDep
from terrascale.common.ids import MAX_ID
from terrascale.posts.cache import PostCache
from terrascale.posts.config import PostSettings
from terrascale.posts.repository import KnownUserRepository, PostRepository
from terrascale.posts.schemas import IDEMPOTENCY_KEY_PATTERN
from terrascale.posts.service import AfterCommit

# Dependencies are coroutines, even those that do no I/O: FastAPI runs a plain function in a
# worker thread, a round trip that costs more than the function.


async def _settings(request: Request) -> PostSettings:
    return request.app.state.settings


async def _after_commit() -> AsyncIterator[AfterCommit]:
    work = AfterCommit()
    yield work
    # Reached only when the request succeeded: a failure (the commit's included) is raised
    # at the yield instead, and the queued work is dropped with the transaction.
    await work.run()


# scope="function" like the session, so this runs before the response is sent.
AfterCommitDep = Annotated[AfterCommit, Depends(_after_commit, scope="function")]


async def _posts(after_commit: AfterCommitDep, session: SessionDep) -> PostRepository:
    # Asking for the after-commit hooks before the session makes them set up first and torn
    # down last: FastAPI closes dependencies in reverse, so they run after the commit.
    del after_commit
    return PostRepository(session)


async def _users(session: SessionDep) -> KnownUserRepository:
    return KnownUserRepository(session)


async def _post_cache(request: Request) -> PostCache:
    # The app's Cache itself, not CacheDep: that one is a plain function (a thread hop).
    return PostCache(request.app.state.cache)


SettingsDep = Annotated[PostSettings, Depends(_settings)]
PostRepositoryDep = Annotated[PostRepository, Depends(_posts)]
KnownUserRepositoryDep = Annotated[KnownUserRepository, Depends(_users)]
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
