"""Request and response bodies of the Post Service."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field

from terrascale.common.ids import Id
from terrascale.posts import text as post_text

IDEMPOTENCY_KEY_PATTERN = r"^[\x21-\x7e]{1,255}$"


def _normalize(value: object) -> object:
    """NFC before the length is checked: "é" is one character however it was typed."""
    return post_text.normalize(value) if isinstance(value, str) else value


def _check(value: str) -> str:
    if (problem := post_text.problem(value)) is not None:
        raise ValueError(problem)
    return value


PostText = Annotated[
    str,
    BeforeValidator(_normalize),
    Field(
        min_length=1,
        max_length=post_text.MAX_LENGTH,
        description=f"1-{post_text.MAX_LENGTH} characters, counted in Unicode code points after "
        "NFC normalisation; not only whitespace; no control characters except tab and line "
        "breaks. @mentions of known users, #hashtags and http(s) links are extracted.",
        examples=["Hello @ada_lovelace! #engines https://example.com"],
    ),
    AfterValidator(_check),
]


class PostCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: PostText
    reply_to: Id | None = Field(
        default=None, description="The post this one answers; it must exist and not be deleted."
    )


class Mention(BaseModel):
    user_id: Id
    username: str


class PostRead(BaseModel):
    id: Id
    author_id: Id
    text: str
    reply_to: Id | None
    mentions: list[Mention]
    hashtags: list[str] = Field(description="Lower-cased, in order of first appearance.")
    urls: list[str]
    created_at: datetime


class CachedPost(BaseModel):
    """A cache entry: the post as it was at ``version``, or None once it is deleted (so a reader
    that loaded the post before the delete cannot put it back)."""

    version: int
    post: PostRead | None
