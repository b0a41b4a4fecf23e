"""HTTP routes of the User Service: parse, call the service, return."""

from __future__ import annotations

from fastapi import APIRouter, Response

from terrascale.common.deps import CacheDep
from terrascale.common.errors import problem_responses
from terrascale.users import service as user_service
from terrascale.users.deps import SettingsDep, UserIdPath, UserRepositoryDep
from terrascale.users.schemas import UserCreate, UserPublic, UserRead

router = APIRouter(prefix="/users", tags=["users"])


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
        **problem_responses(409, 422),
    },
    operation_id="create_user",
)
# Also answer without the trailing slash instead of redirecting a POST.
@router.post("", status_code=201, include_in_schema=False)
async def create_user(
    body: UserCreate,
    response: Response,
    repository: UserRepositoryDep,
    settings: SettingsDep,
) -> UserPublic:
    user = await user_service.create_user(
        repository=repository, username=body.username, logical_shards=settings.logical_shards
    )
    response.headers["Location"] = f"{router.prefix}/{user.id}"
    return UserPublic.model_validate(user, from_attributes=True)


@router.get(
    "/{user_id}",
    summary="Read a user (cache-aside)",
    responses=problem_responses(404, 422),
    operation_id="read_user",
)
async def read_user(
    user_id: UserIdPath, repository: UserRepositoryDep, cache: CacheDep
) -> UserRead:
    return await user_service.get_user(repository=repository, cache=cache, user_id=user_id)
