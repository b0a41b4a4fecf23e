"""HTTP routes for notifications: parse, authenticate, call the service, return."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Body, Request, Response
from sse_starlette import EventSourceResponse, ServerSentEvent

from terrascale.common.auth import CurrentUserId
from terrascale.common.errors import problem_responses
from terrascale.common.ratelimit import LimitWrites
from terrascale.notifications import service as notification_service
from terrascale.notifications import stream as notification_stream
from terrascale.notifications.deps import (
    DEFAULT_PAGE,
    CursorQuery,
    KindsQuery,
    LastEventIdHeader,
    LimitQuery,
    NotificationRepositoryDep,
    SessionFactoryDep,
    SettingsDep,
    WakeUpHubDep,
)
from terrascale.notifications.repository import StoredNotification
from terrascale.notifications.schemas import MarkRead, NotificationRead, UnreadCount

router = APIRouter(prefix="/notifications", tags=["notifications"])
STREAM_PATH = "/stream"

EVENT_NAME = "notification"
# A client that stops reading is dropped rather than left holding the stream's memory.
SEND_TIMEOUT_SECONDS = 30.0

PAGE_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The page, newest first.",
        "headers": {
            "Link": {
                "description": 'RFC 8288 links: `rel="next"` (older, `max_id`) when the page is '
                'full, `rel="prev"` (newer, `min_id`) when it has notifications.',
                "schema": {"type": "string"},
            }
        },
    },
    **problem_responses(401, 422),
}

STREAM_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "An endless `text/event-stream`: events named `notification` whose `id` "
        "is the notification id and whose `data` is the notification as JSON, and a comment "
        "line as heartbeat while idle.",
        "content": {"text/event-stream": {"schema": {"type": "string"}}},
    },
    **problem_responses(401, 422),
}


@router.get(
    "",
    summary="Your notifications, newest first",
    description="Cursor pagination as in Mastodon: `max_id` returns notifications older than "
    "it, `since_id` the newest ones newer than it, `min_id` the ones immediately newer than it "
    "(page forward without gaps). `kinds` keeps only the kinds named.",
    responses=PAGE_RESPONSES,
    operation_id="list_notifications",
)
async def list_notifications(
    *,
    recipient_id: CurrentUserId,
    request: Request,
    response: Response,
    notifications: NotificationRepositoryDep,
    limit: LimitQuery = DEFAULT_PAGE,
    max_id: CursorQuery = None,
    since_id: CursorQuery = None,
    min_id: CursorQuery = None,
    kinds: KindsQuery = None,
) -> list[NotificationRead]:
    page = await notification_service.list_notifications(
        notifications=notifications,
        recipient_id=recipient_id,
        limit=limit,
        kinds=_parse_kinds(kinds),
        max_id=max_id,
        since_id=since_id,
        min_id=min_id,
    )
    if link := _page_links(request, page, limit=limit):
        response.headers["Link"] = link
    return page


@router.get(
    "/unread_count",
    summary="How many of your notifications are unread (exact)",
    responses=problem_responses(401),
    operation_id="read_unread_count",
)
async def read_unread_count(
    recipient_id: CurrentUserId, notifications: NotificationRepositoryDep
) -> UnreadCount:
    return await notification_service.unread_count(
        notifications=notifications, recipient_id=recipient_id
    )


@router.post(
    "/read",
    summary="Mark notifications read",
    description='`{"up_to_id": id}` marks that notification and every older one read; `{}` or '
    "no body marks all. The read mark never moves back. Answers the unread count afterwards.",
    responses=problem_responses(401, 422, 429),
    dependencies=[LimitWrites],
    operation_id="mark_read",
)
async def mark_read(
    recipient_id: CurrentUserId,
    notifications: NotificationRepositoryDep,
    body: Annotated[MarkRead | None, Body()] = None,
) -> UnreadCount:
    return await notification_service.mark_read(
        notifications=notifications,
        recipient_id=recipient_id,
        up_to=None if body is None else body.up_to_id,
    )


@router.get(
    STREAM_PATH,
    summary="Your new notifications, live (Server-Sent Events)",
    description="Without `Last-Event-ID`, sends notifications made from now on; with it, "
    "first every notification after that id, then live ones: none missed, none twice.",
    response_class=EventSourceResponse,
    responses=STREAM_RESPONSES,
    operation_id="stream_notifications",
)
async def stream_notifications(
    *,
    recipient_id: CurrentUserId,
    notifications: NotificationRepositoryDep,
    session_factory: SessionFactoryDep,
    hub: WakeUpHubDep,
    settings: SettingsDep,
    last_event_id: LastEventIdHeader = None,
) -> EventSourceResponse:
    after = await notification_service.stream_start(
        notifications=notifications, recipient_id=recipient_id, last_event_id=last_event_id
    )
    stored = notification_stream.follow(
        session_factory=session_factory,
        hub=hub,
        recipient_id=recipient_id,
        after=after,
        poll_seconds=settings.notification_poll_seconds,
    )
    return EventSourceResponse(
        _as_events(stored),
        ping=settings.notification_heartbeat_seconds,
        ping_message_factory=lambda: ServerSentEvent(comment="heartbeat"),
        send_timeout=SEND_TIMEOUT_SECONDS,
    )


async def _as_events(stored: AsyncIterator[StoredNotification]) -> AsyncIterator[ServerSentEvent]:
    async for notification in stored:
        item = notification_service.to_read(notification)
        yield ServerSentEvent(data=item.model_dump_json(), event=EVENT_NAME, id=str(item.id))


def _parse_kinds(raw: list[str] | None) -> list[str] | None:
    """The values already match the pattern; split the comma-separated ones."""
    if not raw:
        return None
    return sorted({kind for value in raw for kind in value.split(",")})


def _page_links(request: Request, page: list[NotificationRead], *, limit: int) -> str | None:
    """``next`` when the page is full (a shorter page is the end), ``prev`` whenever the page
    has notifications: newer ones may arrive at any time."""
    if not page:
        return None
    base = request.url.remove_query_params(["max_id", "since_id", "min_id", "limit"])
    links = [f'<{base.include_query_params(limit=limit, min_id=page[0].id)}>; rel="prev"']
    if len(page) == limit:
        links.insert(
            0, f'<{base.include_query_params(limit=limit, max_id=page[-1].id)}>; rel="next"'
        )
    return ", ".join(links)
