"""HTTP routes for accounts and profiles: parse, authorise, call the service, return."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, BackgroundTasks, Query, Response
from fastapi.exceptions import RequestValidationError
from pydantic import StringConstraints

from terrascale.common.auth import CurrentUserId
from terrascale.common.deps import CacheDep
from terrascale.common.errors import problem_responses
from terrascale.common.ids import MAX_ID
from terrascale.common.ratelimit import LimitSignIns, LimitWrites
from terrascale.users import service as user_service
from terrascale.users.deps import (
    SettingsDep,
    UserIdPath,
    UsernamePath,
    UserRepositoryDep,
    UserRepositoryOnDemandDep,
)
from terrascale.users.schemas import (
    ProfileUpdate,
    UserCreate,
    UserCreated,
    UserPublic,
    UserRead,
)

router = APIRouter(prefix="/users", tags=["users"])

MAX_BATCH = 100
IDS_PATTERN = r"^[1-9][0-9]{0,18}(,[1-9][0-9]{0,18})*$"


@router.post(
    "/",
    status_code=201,
    summary="Create a user",
    responses={
        201: {
            "description": "Created; `Location` names the new user.",
            # OpenAPI links let clients (and stateful API fuzzers) follow the new id.
            "links": {
                "ReadUser": {
                    "operationId": "read_user",
                    "parameters": {"user_id": "$response.body#/id"},
                }
            },
        },
        **problem_responses(409, 422, 429),
    },
    dependencies=[LimitSignIns],
    operation_id="create_user",
)
async def create_user(
    body: UserCreate,
    response: Response,
    repository: UserRepositoryDep,
    settings: SettingsDep,
) -> UserCreated:
    user = await user_service.create_user(
        repository=repository,
        username=body.username,
        password=body.password.get_secret_value() if body.password else None,
        logical_shards=settings.logical_shards,
        home_shards=None if settings.region_map is None else settings.region_map.local_shards,
    )
    response.headers["Location"] = f"{router.prefix}/{user.id}"
    return UserCreated(id=user.id, username=user.username)


@router.get(
    "",
    summary="Look up several users at once",
    description=f"Up to {MAX_BATCH} ids, comma-separated or repeated; the answer keeps their "
    "order and leaves out unknown ids.",
    responses=problem_responses(422),
    operation_id="read_users",
)
async def read_users(
    ids: Annotated[
        list[Annotated[str, StringConstraints(pattern=IDS_PATTERN)]],
        Query(min_length=1, description="User ids, e.g. `ids=1,2,3`."),
    ],
    repository: UserRepositoryDep,
    cache: CacheDep,
) -> list[UserPublic]:
    return await user_service.get_users(
        repository=repository, cache=cache, user_ids=_parse_ids(ids)
    )


@router.get(
    "/me",
    summary="Your own profile",
    responses=problem_responses(401),
    operation_id="read_own_profile",
)
async def read_own_profile(
    user_id: CurrentUserId, repository: UserRepositoryDep, cache: CacheDep
) -> UserRead:
    return await user_service.get_user(repository=repository, cache=cache, user_id=user_id)


@router.patch(
    "/me",
    summary="Update your own profile",
    responses=problem_responses(401, 422, 429),
    dependencies=[LimitWrites],
    operation_id="update_profile",
)
async def update_profile(
    body: ProfileUpdate,
    user_id: CurrentUserId,
    repository: UserRepositoryDep,
    cache: CacheDep,
    background: BackgroundTasks,
) -> UserPublic:
    user = await user_service.update_profile(
        repository=repository,
        cache=cache,
        user_id=user_id,
        changes=body.model_dump(exclude_unset=True),
    )
    # Background tasks run after the response, which is after the commit.
    background.add_task(
        cache.set_if_newer,
        user_service.user_cache_key(cache, user.id),
        user_service.cache_entry(user),
        version=user.version,
    )
    return user_service.public_profile(user)


@router.get(
    "/by-username/{username}",
    summary="Find a user by username (any letter case)",
    responses=problem_responses(404, 422),
    operation_id="read_user_by_username",
)
async def read_user_by_username(
    username: UsernamePath, repository: UserRepositoryDep
) -> UserPublic:
    return await user_service.get_user_by_username(repository=repository, username=username)


@router.get(
    "/{user_id}",
    summary="Read a user (cache-aside)",
    response_model=UserRead,
    responses=problem_responses(404, 422),
    operation_id="read_user",
)
async def read_user(
    user_id: UserIdPath, repositories: UserRepositoryOnDemandDep, cache: CacheDep
) -> Response:
    # The hottest read in the system: a cache hit is answered with bytes built from the cached
    # JSON, without a database session or a response model.
    body = await user_service.get_cached_user_json(cache=cache, user_id=user_id)
    if body is None:
        async with repositories.transaction() as repository:
            user = await user_service.load_user(repository=repository, cache=cache, user_id=user_id)
        body = user.model_dump_json().encode()
    return Response(body, media_type="application/json")


def _parse_ids(raw: list[str]) -> list[int]:
    """The pattern has checked the form; a count over the limit is the one remaining error.
    Ids beyond the 63-bit range cannot exist, so they are simply not found."""
    ids = [int(part) for value in raw for part in value.split(",")]
    if len(ids) > MAX_BATCH:
        raise RequestValidationError(
            [
                {
                    "loc": ("query", "ids"),
                    "msg": f"At most {MAX_BATCH} ids per request.",
                    "type": "value_error",
                }
            ]
        )
    return [user_id for user_id in ids if user_id <= MAX_ID]
