"""Request and response bodies of the User Service."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from terrascale.common.ids import Id

USERNAME_PATTERN = r"^[A-Za-z0-9_]{3,30}$"

Username = Annotated[
    str,
    Field(
        pattern=USERNAME_PATTERN,
        min_length=3,
        max_length=30,
        description="3-30 ASCII letters, digits or underscores; unique regardless of case.",
        examples=["ada_lovelace"],
    ),
]


class UserCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    username: Username


class UserPublic(BaseModel):
    id: Id
    username: str


class UserRead(UserPublic):
    cached: bool = Field(description="True when this answer was served from the Redis cache.")
