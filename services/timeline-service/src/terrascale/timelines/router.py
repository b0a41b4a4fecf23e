"""HTTP routes of the home timeline: parse, authorise, read, hydrate, return."""

from __future__ import annotations

import orjson
from fastapi import APIRouter, Request, Response

from terrascale.common.auth import CurrentUserId
from terrascale.common.errors import problem_responses
from terrascale.timelines.deps import (
    DEFAULT_PAGE,
    CursorQuery,
    HydratorDep,
    LimitQuery,
    TimelinesDep,
)
from terrascale.timelines.schemas import TimelinePost
from terrascale.timelines.window import Window

router = APIRouter(prefix="/timelines", tags=["timelines"])


@router.get(
    "/home",
    summary="The signed-in user's home timeline, newest first",
    description="Posts of the people the signed-in user follows, with their authors. Cursor "
    "pagination as in Mastodon: `max_id` returns posts older than it, `since_id` the newest "
    "posts newer than it, `min_id` the posts immediately newer than it. The `Link` header "
    'carries the next (`rel="next"`, older) and previous (`rel="prev"`, newer) pages. A page '
    "can be shorter than `limit` without being the last one; only a missing `next` link ends "
    "the timeline.",
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
        **problem_responses(401, 422, 503),
    },
    operation_id="read_home_timeline",
    # The body is built from cached JSON and sent as is; the model documents it.
    response_model=list[TimelinePost],
)
async def read_home_timeline(
    *,
    user_id: CurrentUserId,
    request: Request,
    timelines: TimelinesDep,
    hydrator: HydratorDep,
    max_id: CursorQuery = None,
    since_id: CursorQuery = None,
    min_id: CursorQuery = None,
    limit: LimitQuery = DEFAULT_PAGE,
) -> Response:
    window = Window.from_query(limit=limit, max_id=max_id, since_id=since_id, min_id=min_id)
    page = await timelines.home(user_id, window)
    posts = await hydrator.hydrate(page.authors_of)
    response = Response(orjson.dumps(posts), media_type="application/json")
    if link := _page_links(request, page.scanned, limit=limit):
        response.headers["Link"] = link
    return response


def _page_links(request: Request, scanned: list[int], *, limit: int) -> str | None:
    """``next`` when the scanned window was full (a shorter one is the end), ``prev`` whenever
    it had posts: newer ones may arrive at any time."""
    if not scanned:
        return None
    base = request.url.remove_query_params(["max_id", "since_id", "min_id", "limit"])
    links = [f'<{base.include_query_params(limit=limit, min_id=scanned[0])}>; rel="prev"']
    if len(scanned) == limit:
        links.insert(
            0, f'<{base.include_query_params(limit=limit, max_id=scanned[-1])}>; rel="next"'
        )
    return ", ".join(links)
