"""Whatever a cursor or a page size says, ``GET /notifications`` answers a page or a 422 problem
naming the parameter (the cursors are notification numbers), never a 500."""

from __future__ import annotations

from collections.abc import Callable

from httpx import AsyncClient
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from terrascale.common.ids import MAX_ID
from terrascale.common.testing.helpers import PROBLEM_JSON
from terrascale.common.testing.strategies import is_decimal_id_text, junk_query_values
from terrascale.notifications.deps import MAX_PAGE

Auth = Callable[..., dict[str, str]]


def _accepted(name: str, value: str) -> bool:
    if not is_decimal_id_text(value):
        return False
    if name == "limit":
        return 1 <= int(value) <= MAX_PAGE
    return int(value) <= MAX_ID


# The app and its client are built once per test, not per example: every example only reads.
@settings(
    max_examples=60,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(name=st.sampled_from(["max_id", "since_id", "min_id", "limit"]), value=junk_query_values)
@example(name="max_id", value="9" * 5000)  # past int()'s 4,300-digit limit
@example(name="limit", value=str(MAX_PAGE + 1))
@example(name="limit", value=str(MAX_PAGE))
async def test_any_cursor_or_page_size_is_a_page_or_a_422_problem(
    client: AsyncClient, auth: Auth, new_id: Callable[[], int], name: str, value: str
) -> None:
    response = await client.get("/notifications", params={name: value}, headers=auth(new_id()))
    assert response.status_code in (200, 422), response.text
    if _accepted(name, value):
        assert response.status_code == 200
    if response.status_code == 422:
        assert response.headers["content-type"] == PROBLEM_JSON
        assert {error["field"] for error in response.json()["errors"]} == {f"query.{name}"}
