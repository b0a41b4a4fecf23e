"""Asking the User Service whether a user exists, for users no ``user.created`` event has
announced yet (the follow arrived first)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from http import HTTPStatus

import httpx
from opentelemetry.propagate import inject
from pydantic import BaseModel, TypeAdapter, ValidationError

from terrascale.common.errors import PROBLEM_TYPE_PREFIX
from terrascale.common.ids import Id
from terrascale.common.logging import get_logger
from terrascale.graph.errors import UserServiceUnavailableError

logger = get_logger(__name__)

USER_NOT_FOUND_TYPE = f"{PROBLEM_TYPE_PREFIX}user-not-found"


class UserSummary(BaseModel):
    """The part of the User Service's ``GET /users/{id}`` answer this service keeps."""

    id: Id
    username: str


_SUMMARIES = TypeAdapter(list[UserSummary])


@dataclass(frozen=True, slots=True)
class UserDirectory:
    client: httpx.AsyncClient  # base_url is the User Service
    timeout_seconds: float

    async def find(self, user_id: int) -> UserSummary | None:
        """The user, or None when the User Service says there is none. Anything else (refused,
        too slow, an error or a body it should not send) is UserServiceUnavailableError: "not
        found" must never be guessed."""
        response = await self._get(f"/users/{user_id}", user_id=user_id)
        if _says_no_such_user(response):
            return None
        user = _summary(response, user_id)
        if user is None:
            raise UserServiceUnavailableError(
                "The User Service could not confirm the user; retry shortly."
            )
        return user

    async def find_many(self, user_ids: Sequence[int]) -> dict[int, UserSummary]:
        """The users of these ids that exist (at most 100), in one request: a follow-list import
        of users that signed up a moment ago would otherwise ask once per user."""
        ids = ",".join(str(user_id) for user_id in user_ids)
        response = await self._get("/users", params={"ids": ids})
        users = _summaries(response)
        if users is None:
            logger.warning(
                "user service answered a batch lookup badly", status=response.status_code
            )
            raise UserServiceUnavailableError(
                "The User Service could not confirm the users; retry shortly."
            )
        return {user.id: user for user in users}

    async def _get(
        self, path: str, *, params: dict[str, str] | None = None, user_id: int | None = None
    ) -> httpx.Response:
        headers: dict[str, str] = {}
        inject(headers)  # carry the trace into the User Service
        try:
            # httpx's timeout applies to each phase; this bounds the whole lookup.
            async with asyncio.timeout(self.timeout_seconds):
                return await self.client.get(path, params=params, headers=headers)
        except (httpx.HTTPError, TimeoutError) as exc:
            logger.warning("user service unreachable", error=repr(exc), user_id=user_id)
            raise UserServiceUnavailableError(
                "The User Service is unreachable, so the user cannot be checked; retry shortly."
            ) from None


def _summaries(response: httpx.Response) -> list[UserSummary] | None:
    if response.status_code != HTTPStatus.OK:
        return None
    try:
        return _SUMMARIES.validate_json(response.content)
    except ValidationError:
        return None


def _says_no_such_user(response: httpx.Response) -> bool:
    """A 404 counts only with the User Service's own problem type: a 404 from a proxy or a
    wrong URL must not turn into "this user does not exist"."""
    if response.status_code != HTTPStatus.NOT_FOUND:
        return False
    try:
        return response.json().get("type") == USER_NOT_FOUND_TYPE
    except (ValueError, AttributeError):
        return False


def _summary(response: httpx.Response, user_id: int) -> UserSummary | None:
    if response.status_code != HTTPStatus.OK:
        logger.warning("user service failed", status=response.status_code, user_id=user_id)
        return None
    try:
        user = UserSummary.model_validate_json(response.content)
    except ValidationError as exc:
        logger.warning("user service sent an unexpected body", error=repr(exc), user_id=user_id)
        return None
    if user.id != user_id:
        logger.warning("user service answered about another user", user_id=user_id)
        return None
    return user
