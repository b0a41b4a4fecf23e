"""Request and response bodies of the Notification Service."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from terrascale.common.ids import Id

KindName = Literal["follow", "mention", "reply"]


class NotificationRead(BaseModel):
    id: Id = Field(
        description="The recipient's own sequence number (1, 2, 3, ... without gaps): a cursor "
        "for `max_id`/`since_id`/`min_id`, `up_to_id` and the stream's `Last-Event-ID`."
    )
    kind: KindName
    actor_id: Id = Field(description="Who followed, mentioned or replied.")
    post_id: Id | None = Field(description="The post that mentions or replies; null for a follow.")
    created_at: datetime = Field(description="When it happened (the event's time).")
    read: bool = Field(description="True once `POST /notifications/read` covered its id.")


class UnreadCount(BaseModel):
    count: int = Field(ge=0, description="Unread notifications, exact.")


class MarkRead(BaseModel):
    model_config = ConfigDict(extra="forbid")

    up_to_id: Id | None = Field(
        default=None,
        description="Mark this id and every older one read; omitted means all. An id beyond "
        "the newest means the newest.",
    )
