"""Response bodies of the Timeline Service, and the parts of the Post and User Services'
answers it reads."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from terrascale.common.ids import Id


class Author(BaseModel):
    id: Id
    username: str
    display_name: str | None = None


class Mention(BaseModel):
    user_id: Id
    username: str


class Post(BaseModel):
    """A post as the Post Service's batch read returns it."""

    id: Id
    author_id: Id
    text: str
    reply_to: Id | None
    mentions: list[Mention]
    hashtags: list[str]
    urls: list[str]
    created_at: datetime


class TimelinePost(Post):
    author: Author | None = Field(
        description="The author's public profile; null only while the User Service cannot "
        "answer (the post itself is still shown)."
    )
