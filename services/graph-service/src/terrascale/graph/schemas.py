"""Request and response bodies of the Graph Service."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from terrascale.common.ids import Id


class Relationship(BaseModel):
    user_id: Id
    target_id: Id
    following: bool = Field(description="True when user_id follows target_id.")
    followed_by: bool = Field(description="True when target_id follows user_id.")


MAX_FOLLOWS_PER_REQUEST = 100


class FollowMany(BaseModel):
    model_config = ConfigDict(extra="forbid")

    user_ids: list[Id] = Field(
        min_length=1,
        max_length=MAX_FOLLOWS_PER_REQUEST,
        description=f"1-{MAX_FOLLOWS_PER_REQUEST} users to follow; repeats count once.",
    )


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
