"""HTTP routes for the follow graph: parse, authorise, call the service, return."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response

from terrascale.common.auth import CurrentUserId, ForbiddenError
from terrascale.common.errors import problem_responses
from terrascale.common.ratelimit import LimitWrites
from terrascale.graph import service as graph_service
from terrascale.graph.deps import (
    DEFAULT_PAGE_SIZE,
    CursorQuery,
    LimitQuery,
    ShardsDep,
    TargetIdPath,
    UserDirectoryDep,
    UserIdPath,
)
from terrascale.graph.schemas import FollowCounts, FollowMany, FollowPage, Relationship

router = APIRouter(prefix="/users", tags=["graph"])

PAGE_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "A page, newest first.",
        "headers": {
            "Link": {
                "description": '`<url>; rel="next"` when there is a next page.',
                "schema": {"type": "string"},
            }
        },
    },
    **problem_responses(400, 422),
}


def _ensure_own_graph(caller: int, user_id: int) -> None:
    if caller != user_id:
        raise ForbiddenError("You can only change whom you follow yourself.")


@router.put(
    "/{user_id}/following/{target_id}",
    summary="Follow a user (idempotent)",
    description="`user_id` must be the signed-in user. Following again changes nothing.",
    responses=problem_responses(401, 403, 404, 422, 429, 503),
    dependencies=[LimitWrites],
    operation_id="follow",
)
async def follow(
    *,
    user_id: UserIdPath,
    target_id: TargetIdPath,
    caller: CurrentUserId,
    shards: ShardsDep,
    directory: UserDirectoryDep,
) -> Relationship:
    _ensure_own_graph(caller, user_id)
    return await graph_service.follow(
        shards=shards,
        directory=directory,
        user_id=user_id,
        target_id=target_id,
    )


@router.post(
    "/{user_id}/following",
    summary="Follow several users at once (a follow-list import; idempotent)",
    description="`user_id` must be the signed-in user. All or nothing: one unknown user and "
    "none is followed. Each new follow emits `follow.created` as a single follow does. The "
    "answer has one relationship per distinct id, in the order given.",
    responses=problem_responses(401, 403, 404, 422, 429, 503),
    dependencies=[LimitWrites],
    operation_id="follow_many",
)
async def follow_many(
    *,
    user_id: UserIdPath,
    body: FollowMany,
    caller: CurrentUserId,
    shards: ShardsDep,
    directory: UserDirectoryDep,
) -> list[Relationship]:
    _ensure_own_graph(caller, user_id)
    return await graph_service.follow_many(
        shards=shards,
        directory=directory,
        user_id=user_id,
        target_ids=body.user_ids,
    )


@router.delete(
    "/{user_id}/following/{target_id}",
    summary="Unfollow a user (idempotent)",
    description="`user_id` must be the signed-in user. Unfollowing again changes nothing.",
    responses=problem_responses(401, 403, 404, 422, 429, 503),
    dependencies=[LimitWrites],
    operation_id="unfollow",
)
async def unfollow(
    *,
    user_id: UserIdPath,
    target_id: TargetIdPath,
    caller: CurrentUserId,
    shards: ShardsDep,
    directory: UserDirectoryDep,
) -> Relationship:
    _ensure_own_graph(caller, user_id)
    return await graph_service.unfollow(
        shards=shards,
        directory=directory,
        user_id=user_id,
        target_id=target_id,
    )


@router.get(
    "/{user_id}/followers",
    summary="Who follows a user, newest first",
    responses=PAGE_RESPONSES,
    operation_id="list_followers",
)
async def list_followers(
    *,
    user_id: UserIdPath,
    request: Request,
    response: Response,
    shards: ShardsDep,
    limit: LimitQuery = DEFAULT_PAGE_SIZE,
    cursor: CursorQuery = None,
) -> FollowPage:
    page = await graph_service.list_followers(
        shards=shards, user_id=user_id, limit=limit, cursor=cursor
    )
    _link_next_page(request, response, page)
    return page


@router.get(
    "/{user_id}/following",
    summary="Whom a user follows, newest first",
    responses=PAGE_RESPONSES,
    operation_id="list_following",
)
async def list_following(
    *,
    user_id: UserIdPath,
    request: Request,
    response: Response,
    shards: ShardsDep,
    limit: LimitQuery = DEFAULT_PAGE_SIZE,
    cursor: CursorQuery = None,
) -> FollowPage:
    page = await graph_service.list_following(
        shards=shards, user_id=user_id, limit=limit, cursor=cursor
    )
    _link_next_page(request, response, page)
    return page


@router.get(
    "/{user_id}/relationship/{other_id}",
    summary="Whether two users follow each other",
    responses=problem_responses(422),
    operation_id="read_relationship",
)
async def read_relationship(
    user_id: UserIdPath, other_id: TargetIdPath, shards: ShardsDep
) -> Relationship:
    return await graph_service.relationship(shards=shards, user_id=user_id, other_id=other_id)


@router.get(
    "/{user_id}/counts",
    summary="How many followers a user has and how many they follow (exact)",
    responses=problem_responses(422),
    operation_id="read_counts",
)
async def read_counts(user_id: UserIdPath, shards: ShardsDep) -> FollowCounts:
    return await graph_service.counts(shards=shards, user_id=user_id)


def _link_next_page(request: Request, response: Response, page: FollowPage) -> None:
    if page.next_cursor is not None:
        url = request.url.include_query_params(cursor=page.next_cursor)
        response.headers["Link"] = f'<{url}>; rel="next"'
