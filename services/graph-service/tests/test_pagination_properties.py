"""Properties of the followers/following cursors: every position round-trips exactly, only the
cursors this service issued decode, and whatever else arrives over HTTP (random, truncated,
tampered, non-ASCII) is a 400 problem, never a 500. Page sizes outside 1-200 are a 422."""

from __future__ import annotations

import base64
from datetime import UTC, datetime

import pytest
from httpx import AsyncClient
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from terrascale.common.ids import MAX_ID
from terrascale.common.testing.helpers import PROBLEM_JSON
from terrascale.graph.deps import MAX_PAGE_SIZE
from terrascale.graph.errors import InvalidCursorError
from terrascale.graph.pagination import (
    MAX_CURSOR_LENGTH,
    Position,
    decode_cursor,
    encode_cursor,
)

# The fixtures (an app and its client) are built once per test, not per example: fine, since
# every example only reads.
HTTP_SETTINGS = settings(
    max_examples=60,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
URL_SAFE = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"

positions = st.builds(
    Position,
    created_at=st.datetimes(
        min_value=datetime(1970, 1, 1), max_value=datetime(9999, 12, 30), timezones=st.just(UTC)
    ),
    user_id=st.integers(min_value=1, max_value=MAX_ID),
)


@st.composite
def tampered_cursors(draw: st.DrawFn) -> str:
    cursor = encode_cursor(draw(positions))
    index = draw(st.integers(min_value=0, max_value=len(cursor) - 1))
    change = draw(st.sampled_from(["replace", "truncate", "drop", "append", "swapcase"]))
    if change == "replace":
        replacement = draw(st.sampled_from(URL_SAFE).filter(lambda c: c != cursor[index]))
        return cursor[:index] + replacement + cursor[index + 1 :]
    if change == "truncate":
        return cursor[:index]
    if change == "drop":
        return cursor[:index] + cursor[index + 1 :]
    if change == "append":
        return cursor + draw(st.text(st.sampled_from(URL_SAFE + "=.~ "), min_size=1, max_size=3))
    return cursor.swapcase()


junk_cursors = st.one_of(
    tampered_cursors(),
    st.text(st.characters(exclude_categories=("Cs",)), max_size=100),  # any text, non-ASCII too
    st.text(st.sampled_from(URL_SAFE), max_size=MAX_CURSOR_LENGTH + 4),
    st.binary(max_size=60).map(lambda raw: base64.urlsafe_b64encode(raw).decode().rstrip("=")),
)


def _decodes(cursor: str) -> bool:
    try:
        decode_cursor(cursor)
    except InvalidCursorError:
        return False
    return True


@given(positions)
def test_every_position_round_trips_through_a_short_url_safe_cursor(position: Position) -> None:
    cursor = encode_cursor(position)
    assert len(cursor) <= MAX_CURSOR_LENGTH
    assert set(cursor) <= set(URL_SAFE)
    assert decode_cursor(cursor) == position


@given(junk_cursors)
def test_only_the_spelling_the_service_issues_decodes(cursor: str) -> None:
    """Decoding raises nothing but InvalidCursorError, and accepts one spelling per position."""
    try:
        position = decode_cursor(cursor)
    except InvalidCursorError:
        return
    assert encode_cursor(position) == cursor


@given(tampered_cursors())
def test_a_tampered_cursor_never_decodes(cursor: str) -> None:
    # The CRC-32 catches every change of up to 32 bits, and truncation breaks the layout.
    assert not _decodes(cursor)


@pytest.mark.parametrize("kind", ["followers", "following"])
@HTTP_SETTINGS
@given(cursor=junk_cursors)
@example(cursor="\u00e9\u00e8")
@example(cursor="A" * (MAX_CURSOR_LENGTH + 1))
async def test_junk_cursors_over_http_are_400_problems(
    client: AsyncClient, kind: str, cursor: str
) -> None:
    response = await client.get(f"/users/1/{kind}", params={"cursor": cursor})
    if _decodes(cursor):
        assert response.status_code == 200
        return
    assert response.status_code == 400, response.text
    assert response.headers["content-type"] == PROBLEM_JSON
    problem = response.json()
    assert problem["type"] == "urn:terrascale:problem:invalid-cursor"
    assert problem["status"] == 400


@HTTP_SETTINGS
@given(limit=st.integers(min_value=-(2**70), max_value=2**70))
@example(limit=MAX_PAGE_SIZE)
@example(limit=MAX_PAGE_SIZE + 1)
async def test_page_size_is_1_to_200_or_a_422(client: AsyncClient, limit: int) -> None:
    response = await client.get("/users/1/followers", params={"limit": limit})
    if 1 <= limit <= MAX_PAGE_SIZE:
        assert response.status_code == 200
        assert len(response.json()["items"]) <= limit
    else:
        assert response.status_code == 422
        assert response.headers["content-type"] == PROBLEM_JSON
        assert [error["field"] for error in response.json()["errors"]] == ["query.limit"]
