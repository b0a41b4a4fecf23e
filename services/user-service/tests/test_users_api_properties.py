"""Limits of the User Service as properties over HTTP: a username is accepted exactly when it is
3-30 ASCII letters, digits or underscores, and is unique whatever its case (there are no
reserved names: ``/users/me`` is a literal route, and "me" is too short to be a username);
display names (1-50) and bios (0-300) are counted in code points, and any text, lone surrogates
included, is a 200 or a 422 problem, never a 500."""

from __future__ import annotations

import json
import re

from httpx import AsyncClient
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from terrascale.common.testing.helpers import PROBLEM_JSON
from terrascale.users.schemas import BIO_PATTERN, DISPLAY_NAME_PATTERN, USERNAME_PATTERN

# The app and its client are built once per test, not per example; usernames repeat across
# examples only when Hypothesis draws one twice, which is the uniqueness property's business.
HTTP_SETTINGS = settings(
    max_examples=50,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
ASTRAL = "\U0001f600"  # one code point, two UTF-16 units, four UTF-8 bytes

names = st.one_of(
    st.from_regex(USERNAME_PATTERN, fullmatch=True),
    st.text(st.characters(exclude_categories=("Cs",)), max_size=35),
    st.text(st.sampled_from("aZ9_-. \u00e9\u0130"), max_size=32),
)


@HTTP_SETTINGS
@given(name=names)
@example(name="abc")
@example(name="a" * 30)
@example(name="ab")
@example(name="a" * 31)
@example(name="me")
@example(name="ada\n")
async def test_a_username_is_3_to_30_ascii_word_characters_unique_in_any_case(
    client: AsyncClient, name: str
) -> None:
    response = await client.post("/users/", json={"username": name})
    if not re.fullmatch(r"[A-Za-z0-9_]{3,30}", name):
        assert response.status_code == 422, response.text
        assert response.headers["content-type"] == PROBLEM_JSON
        assert "body.username" in [error["field"] for error in response.json()["errors"]]
        return
    # Another example (or test) may have taken it already: then it stays taken.
    assert response.status_code in (201, 409), response.text
    again = await client.post("/users/", json={"username": name.swapcase()})
    assert again.status_code == 409
    assert again.json()["type"] == "urn:terrascale:problem:username-taken"


profile_text = st.one_of(
    st.text(st.characters(exclude_categories=()), max_size=320),  # lone surrogates too
    st.integers(min_value=0, max_value=310).map(lambda n: ASTRAL * n),
)


def _fits(value: str, *, pattern: str, min_length: int, max_length: int) -> bool:
    has_surrogate = any("\ud800" <= char <= "\udfff" for char in value)
    return (
        min_length <= len(value) <= max_length
        and re.fullmatch(pattern.strip("^$"), value) is not None
        and not has_surrogate
    )


@HTTP_SETTINGS
@given(field=st.sampled_from(["display_name", "bio"]), value=profile_text)
@example(field="display_name", value=ASTRAL * 50)
@example(field="display_name", value=ASTRAL * 51)
@example(field="bio", value=ASTRAL * 300)
@example(field="bio", value=ASTRAL * 301)
@example(field="bio", value="\ud800")
async def test_profile_texts_are_counted_in_code_points_and_never_break_the_service(
    client: AsyncClient, access_token: str, field: str, value: str
) -> None:
    pattern, min_length, max_length = {
        "display_name": (DISPLAY_NAME_PATTERN, 1, 50),
        "bio": (BIO_PATTERN, 0, 300),
    }[field]
    response = await client.patch(
        "/users/me",
        # json.dumps escapes a lone surrogate ("\ud800"), as a browser's JSON.stringify would.
        content=json.dumps({field: value}),
        headers={"Authorization": f"Bearer {access_token}", "Content-Type": "application/json"},
    )
    if _fits(value, pattern=pattern, min_length=min_length, max_length=max_length):
        assert response.status_code == 200, response.text
        assert response.json()[field] == value
    else:
        assert response.status_code == 422, response.text
        assert response.headers["content-type"] == PROBLEM_JSON
