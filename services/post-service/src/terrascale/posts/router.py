"""HTTP routes for posts and user timelines: parse, authorise, call the service, return."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from pydantic import Field

from terrascale.common.auth import CurrentUserId
from terrascale.common.errors import problem_responses
from terrascale.common.ids import MAX_ID
from terrascale.common.ratelimit import LimitWrites
from terrascale.posts import service as post_service
from terrascale.posts.deps import (
    IdempotencyKeyHeader,
    PostCacheDep,
    PostIdPath,
    SettingsDep,
    ShardsDep,
    UserIdPath,
)
from terrascale.posts.schemas import PostCreate, PostRead

router = APIRouter(tags=["posts"])

MAX_BATCH = 100
# Decimal ids without leading zeros, one or several separated by commas; the pattern keeps int()
# away from huge inputs (it refuses more than 4,300 digits with a ValueError).
IDS_PATTERN = r"^[1-9][0-9]{0,18}(,[1-9][0-9]{0,18})*$"
DEFAULT_PAGE = 20
MAX_PAGE = 40

CursorQuery = Annotated[int | None, Query(ge=1, le=MAX_ID, examples=["1234567890123"])]


@router.post(
    "/posts",
    status_code=201,
    summary="Write a post",
    description="The author is the signed-in user. With an `Idempotency-Key`, a retry returns "
    "the post the first request created (201, `Idempotent-Replayed: true`) instead of a second "
    "one; the same key with a different body is refused (422).",
    responses={
        201: {
            "description": "Created; `Location` names the new post.",
            # OpenAPI links let clients (and stateful API fuzzers) follow the new id.
            "links": {
                "ReadPost": {
                    "operationId": "read_post",
                    "parameters": {"post_id": "$response.body#/id"},
                },
                "DeletePost": {
                    "operationId": "delete_post",
                    "parameters": {"post_id": "$response.body#/id"},
                },
            },
        },
        **problem_responses(401, 409, 422, 429),
    },
    dependencies=[LimitWrites],
    operation_id="create_post",
)
async def create_post(
    *,
    body: PostCreate,
    author_id: CurrentUserId,
    response: Response,
    shards: ShardsDep,
    cache: PostCacheDep,
    settings: SettingsDep,
    idempotency_key: IdempotencyKeyHeader = None,
) -> PostRead:
    created = await post_service.create_post(
        shards=shards,
        cache=cache,
        author_id=author_id,
        text=body.text,
        reply_to=body.reply_to,
        idempotency_key=idempotency_key,
        idempotency_ttl=timedelta(seconds=settings.idempotency_key_ttl_seconds),
    )
    response.headers["Location"] = f"/posts/{created.post.id}"
    if created.replayed:
        response.headers["Idempotent-Replayed"] = "true"
    return created.post


@router.get(
    "/posts",
    summary="Read several posts at once",
    description=f"Up to {MAX_BATCH} ids, comma-separated or repeated; the answer keeps their "
    "order and leaves out unknown and deleted posts. Served from Redis where it can be.",
    responses=problem_responses(422),
    operation_id="read_posts",
)
async def read_posts(
    ids: Annotated[
        list[Annotated[str, Field(pattern=IDS_PATTERN)]],
        Query(
            min_length=1,
            max_length=MAX_BATCH,
            description="Post ids in decimal, comma-separated or repeated: `ids=1,2,3`.",
        ),
    ],
    shards: ShardsDep,
    cache: PostCacheDep,
) -> list[PostRead]:
    return await post_service.get_posts(shards=shards, cache=cache, post_ids=_parse_ids(ids))


@router.get(
    "/posts/{post_id}",
    summary="Read a post",
    responses=problem_responses(404, 422),
    operation_id="read_post",
)
async def read_post(post_id: PostIdPath, shards: ShardsDep, cache: PostCacheDep) -> PostRead:
    return await post_service.get_post(shards=shards, cache=cache, post_id=post_id)


@router.delete(
    "/posts/{post_id}",
    status_code=204,
    summary="Delete your own post",
    description="A deleted post answers 404 everywhere, deleting it again included.",
    responses=problem_responses(401, 403, 404, 422, 429),
    dependencies=[LimitWrites],
    operation_id="delete_post",
)
async def delete_post(
    post_id: PostIdPath,
    user_id: CurrentUserId,
    shards: ShardsDep,
    cache: PostCacheDep,
) -> None:
    await post_service.delete_post(shards=shards, cache=cache, post_id=post_id, user_id=user_id)


@router.get(
    "/users/{user_id}/posts",
    summary="A user's posts, newest first",
    description="Cursor pagination as in Mastodon: `max_id` returns posts older than it, "
    "`since_id` the newest posts newer than it, `min_id` the posts immediately newer than it "
    "(page forward through new posts without gaps). The `Link` header carries the next "
    '(`rel="next"`, older) and previous (`rel="prev"`, newer) pages.',
    responses={
        200: {
            "description": "The page, newest first.",
            "headers": {
                "Link": {
                    "description": "RFC 8288 links to the older and newer pages.",
                    "schema": {"type": "string"},
                }
            },
        },
        **problem_responses(422),
    },
    operation_id="read_user_posts",
)
async def read_user_posts(
    *,
    user_id: UserIdPath,
    request: Request,
    response: Response,
    shards: ShardsDep,
    max_id: CursorQuery = None,
    since_id: CursorQuery = None,
    min_id: CursorQuery = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = DEFAULT_PAGE,
) -> list[PostRead]:
    page = await post_service.list_user_posts(
        shards=shards, user_id=user_id, limit=limit, max_id=max_id, since_id=since_id, min_id=min_id
    )
    if link := _page_links(request, page, limit=limit):
        response.headers["Link"] = link
    return page


def _page_links(request: Request, page: list[PostRead], *, limit: int) -> str | None:
    """``next`` when the page is full (a shorter page is the end), ``prev`` whenever the page
    has posts: newer ones may arrive at any time."""
    if not page:
        return None
    base = request.url.remove_query_params(["max_id", "since_id", "min_id", "limit"])
    links = [f'<{base.include_query_params(limit=limit, since_id=page[0].id)}>; rel="prev"']
    if len(page) == limit:
        links.insert(
            0, f'<{base.include_query_params(limit=limit, max_id=page[-1].id)}>; rel="next"'
        )
    return ", ".join(links)


def _parse_ids(raw: list[str]) -> list[int]:
    """The values already match IDS_PATTERN; what is left is the total count. A well-formed id
    beyond the 63-bit range cannot exist, so it is left out like any unknown id."""
    parts = [part for value in raw for part in value.split(",")]
    if len(parts) > MAX_BATCH:
        raise RequestValidationError(
            [
                {
                    "loc": ("query", "ids"),
                    "msg": f"At most {MAX_BATCH} ids per request.",
                    "type": "value_error",
                }
            ]
        )
    return [post_id for post_id in map(int, parts) if post_id <= MAX_ID]
