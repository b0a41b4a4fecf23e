"""RFC 9457 problem details: one error type hierarchy and one renderer for every failure.

Domain errors subclass ``AppError``; validation errors, unknown routes, unreachable dependencies
and unexpected exceptions are rendered by the handlers installed with ``install_error_handlers``,
so no response of any service leaves with an error body in another shape.
"""

from __future__ import annotations

import socket
from http import HTTPStatus
from typing import Any, ClassVar, cast

import asyncpg
import sqlalchemy.exc
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match, Route

from terrascale.common.logging import get_logger

PROBLEM_MEDIA_TYPE = "application/problem+json"
PROBLEM_TYPE_PREFIX = "urn:terrascale:problem:"

logger = get_logger(__name__)


class FieldError(BaseModel):
    field: str = Field(description="Dotted location of the offending input, e.g. body.username.")
    message: str


class Problem(BaseModel):
    """An RFC 9457 problem details object."""

    model_config = ConfigDict(extra="allow")

    type: str = Field(default="about:blank", examples=[f"{PROBLEM_TYPE_PREFIX}not-found"])
    title: str = Field(examples=["Not Found"])
    status: int = Field(ge=400, le=599, examples=[404])
    detail: str | None = Field(default=None, examples=["No user has id 42."])
    instance: str | None = Field(default=None, examples=["/users/42"])
    errors: list[FieldError] | None = Field(
        default=None, description="Present on validation errors: one entry per invalid field."
    )


class ProblemResponse(JSONResponse):
    media_type = PROBLEM_MEDIA_TYPE


class AppError(Exception):
    """Base of every error a service raises on purpose; subclasses set status, title and slug."""

    status: ClassVar[int] = 500
    title: ClassVar[str] = "Internal Server Error"
    slug: ClassVar[str | None] = None
    # True for errors that are outcomes, not failures: the request's transaction still commits
    # (e.g. revoking a stolen token's family while refusing the token).
    keeps_changes: ClassVar[bool] = False

    def __init__(self, detail: str | None = None, *, headers: dict[str, str] | None = None):
        super().__init__(detail or self.title)
        self.detail = detail
        self.headers = headers

    @property
    def type_uri(self) -> str:
        return f"{PROBLEM_TYPE_PREFIX}{self.slug}" if self.slug else "about:blank"


class NotFoundError(AppError):
    status = 404
    title = "Not Found"
    slug = "not-found"


class ConflictError(AppError):
    status = 409
    title = "Conflict"
    slug = "conflict"


class TooManyRequestsError(AppError):
    status = 429
    title = "Too Many Requests"
    slug = "too-many-requests"

    def __init__(self, detail: str, *, retry_after_seconds: int) -> None:
        super().__init__(detail, headers={"Retry-After": str(max(1, retry_after_seconds))})


class DependencyUnavailableError(AppError):
    status = 503
    title = "Service Unavailable"
    slug = "dependency-unavailable"


def problem_response(
    request: Request,
    *,
    status: int,
    title: str | None = None,
    type_uri: str = "about:blank",
    detail: str | None = None,
    headers: dict[str, str] | None = None,
    **extensions: Any,
) -> ProblemResponse:
    body: dict[str, Any] = {
        "type": type_uri,
        "title": title or HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
        "instance": request.url.path,
        **extensions,
    }
    return ProblemResponse({k: v for k, v in body.items() if v is not None}, status, headers)


async def _app_error(request: Request, exc: Exception) -> ProblemResponse:
    error = cast(AppError, exc)
    return problem_response(
        request,
        status=error.status,
        title=error.title,
        type_uri=error.type_uri,
        detail=error.detail,
        headers=error.headers,
    )


async def _validation_error(request: Request, exc: Exception) -> ProblemResponse:
    errors = [_field_error(error) for error in cast(RequestValidationError, exc).errors()]
    names = ", ".join(dict.fromkeys(error.field for error in errors))
    return problem_response(
        request,
        status=422,
        type_uri=f"{PROBLEM_TYPE_PREFIX}validation-error",
        title="Invalid request",
        detail=f"Invalid value for {names}." if names else "Invalid request.",
        errors=[error.model_dump() for error in errors],
    )


def _field_error(error: Any) -> FieldError:
    location = [str(part) for part in error["loc"]]
    if error.get("type") == "json_invalid" and len(location) == 2:  # noqa: PLR2004
        # FastAPI puts the character offset where a field name would be: say it in words.
        return FieldError(field="body", message=f"{error['msg']} at character {location[1]}")
    return FieldError(field=".".join(location), message=error["msg"])


async def _http_error(request: Request, exc: Exception) -> ProblemResponse:
    error = cast(StarletteHTTPException, exc)
    detail = error.detail if error.detail != HTTPStatus(error.status_code).phrase else None
    headers = dict(error.headers or {})
    if error.status_code == HTTPStatus.METHOD_NOT_ALLOWED and (methods := _allowed(request)):
        headers["Allow"] = ", ".join(sorted(methods))
    return problem_response(request, status=error.status_code, detail=detail, headers=headers)


def _allowed(request: Request) -> set[str]:
    """Every method of every route matching the path. Starlette's own ``Allow`` names only the
    first matching route's, and ``/posts`` (GET, POST) or ``/users/{id}/following/{target}``
    (PUT, DELETE) are two routes each; RFC 9110 wants them all."""
    routes: list[Route] = getattr(request.app.state, "api_routes", [])
    matching = [route for route in routes if route.matches(request.scope)[0] != Match.NONE]
    # A literal path (/users/me) is its own resource, not an instance of /users/{user_id}.
    literal = [route for route in matching if not route.param_convertors]
    return {method for route in literal or matching for method in route.methods or ()}


async def _database_unavailable(request: Request, exc: Exception) -> ProblemResponse:
    logger.warning("database unavailable", error=repr(exc), path=request.url.path)
    return problem_response(
        request,
        status=503,
        type_uri=f"{PROBLEM_TYPE_PREFIX}dependency-unavailable",
        detail="The database is unavailable; retry shortly.",
        headers={"Retry-After": "1"},
    )


async def _unexpected_error(request: Request, exc: Exception) -> ProblemResponse:
    logger.error("unhandled exception", path=request.url.path, exc_info=exc)
    return problem_response(request, status=500, detail="An unexpected error occurred.")


# Failures that mean "PostgreSQL is unreachable or too slow", not "our query is wrong".
DATABASE_UNAVAILABLE_ERRORS: tuple[type[Exception], ...] = (
    sqlalchemy.exc.OperationalError,
    sqlalchemy.exc.InterfaceError,
    sqlalchemy.exc.TimeoutError,
    asyncpg.exceptions.CannotConnectNowError,
    asyncpg.exceptions.TooManyConnectionsError,  # raised by connect(), never wrapped
    asyncpg.exceptions.ConnectionDoesNotExistError,
    asyncpg.exceptions.InterfaceError,
    ConnectionError,
    TimeoutError,
    socket.gaierror,
)


# SQLSTATEs of a statement PostgreSQL gave up on (statement_timeout, lock_timeout): the database
# is too busy right now, which a retry can fix; it says nothing wrong about the request.
DATABASE_BUSY_SQLSTATES = frozenset({"57014", "55P03"})


def is_database_busy(exc: BaseException) -> bool:
    return isinstance(exc, sqlalchemy.exc.DBAPIError) and (
        getattr(exc.orig, "sqlstate", None) in DATABASE_BUSY_SQLSTATES
    )


async def _database_error(request: Request, exc: Exception) -> ProblemResponse:
    if is_database_busy(exc):
        return await _database_unavailable(request, exc)
    return await _unexpected_error(request, exc)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(AppError, _app_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    for error_type in DATABASE_UNAVAILABLE_ERRORS:
        app.add_exception_handler(error_type, _database_unavailable)
    app.add_exception_handler(sqlalchemy.exc.DBAPIError, _database_error)
    app.add_exception_handler(Exception, _unexpected_error)


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` entries for the problems a route can answer with."""
    return {
        status: {"model": Problem, "description": HTTPStatus(status).phrase} for status in statuses
    }
