"""Request and response bodies of the Graph Service."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from terrascale.common.ids import Id


class Relationship(BaseModel):
    user_id: Id
    target_id: Id
    following: bool = Field(description="True when user_id follows target_id.")
    followed_by: bool = Field(description="True when target_id follows user_id.")


class FollowItem(BaseModel):
    user_id: Id = Field(description="The follower (in /followers) or followee (in /following).")
    followed_at: datetime


class FollowPage(BaseModel):
    items: list[FollowItem]
    next_cursor: str | None = Field(
        description="Pass as `cursor` for the next (older) page; null on the last page."
    )


class FollowCounts(BaseModel):
    user_id: Id
    followers: int = Field(ge=0)
    following: int = Field(ge=0)
