"""Graph Service request dependencies."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Path, Query, Request

from terrascale.common.deps import SessionDep
from terrascale.common.ids import MAX_ID
from terrascale.graph.directory import UserDirectory
from terrascale.graph.repository import FollowRepository, KnownUserRepository

DEFAULT_PAGE_SIZE = 40
MAX_PAGE_SIZE = 200


async def _follows(session: SessionDep) -> FollowRepository:
    return FollowRepository(session)


async def _known_users(session: SessionDep) -> KnownUserRepository:
    return KnownUserRepository(session)


async def _directory(request: Request) -> UserDirectory:
    return request.app.state.user_directory


FollowRepositoryDep = Annotated[FollowRepository, Depends(_follows)]
KnownUserRepositoryDep = Annotated[KnownUserRepository, Depends(_known_users)]
UserDirectoryDep = Annotated[UserDirectory, Depends(_directory)]


def _id_path(description: str) -> object:
    return Path(ge=1, le=MAX_ID, description=description, examples=["1234567890123"])


UserIdPath = Annotated[int, _id_path("The user whose graph this is, in decimal.")]
TargetIdPath = Annotated[int, _id_path("The other user, in decimal.")]
LimitQuery = Annotated[
    int, Query(ge=1, le=MAX_PAGE_SIZE, description=f"Page size, 1-{MAX_PAGE_SIZE}.")
]
CursorQuery = Annotated[
    str | None,
    Query(
        description="`next_cursor` of the previous page; anything else is a 400 problem.",
        examples=["MTc5NTY2MjI0NTY3ODkwMToyMzYwNTYwNjI3MjU3NTY4MzA6MTM2NmRlZjk"],
    ),
]
