"""Graph Service request dependencies."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Path, Query, Request

from terrascale.common.ids import MAX_ID
from terrascale.common.sharding import ShardedDatabases
from terrascale.graph.directory import UserDirectory

DEFAULT_PAGE_SIZE = 40
MAX_PAGE_SIZE = 200


async def _shards(request: Request) -> ShardedDatabases:
    return request.app.state.shards


async def _directory(request: Request) -> UserDirectory:
    return request.app.state.user_directory


# The service opens its transactions itself: which database depends on the shard of the data.
ShardsDep = Annotated[ShardedDatabases, Depends(_shards)]
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
