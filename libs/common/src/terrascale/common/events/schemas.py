"""The ``data`` models of every event, and the registry that finds one by (type, version).

One model per (type, schema_version). Adding an optional field keeps the version (consumers
ignore fields they do not know); removing, renaming or retyping a field makes a new model with
the next version, and producers keep emitting the old one until every consumer reads the new.
docs/events.md lists them all; a test keeps that table and this registry in step.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from terrascale.common.ids import Id


class InvalidEventError(Exception):
    """An event no handler can ever accept: unknown type or version, or data that does not fit.

    Retrying cannot help, so the consumer runner dead-letters it at once.
    """


class EventData(BaseModel):
    """Base of every event's ``data``. Subclasses set the two class variables and ``subject``."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    event_type: ClassVar[str]
    schema_version: ClassVar[int]

    @property
    def subject(self) -> str:
        """The aggregate the event is about: events of one subject keep their order."""
        raise NotImplementedError


class UserCreated(EventData):
    event_type: ClassVar[str] = "user.created"
    schema_version: ClassVar[int] = 1

    user_id: Id
    username: str

    @property
    def subject(self) -> str:
        return str(self.user_id)


class UserUpdated(EventData):
    event_type: ClassVar[str] = "user.updated"
    schema_version: ClassVar[int] = 1

    user_id: Id
    display_name: str | None
    bio: str | None

    @property
    def subject(self) -> str:
        return str(self.user_id)


class FollowCreated(EventData):
    event_type: ClassVar[str] = "follow.created"
    schema_version: ClassVar[int] = 1

    follower_id: Id
    followee_id: Id

    @property
    def subject(self) -> str:
        # Keyed by the follower: follow and unfollow of one pair stay in order.
        return str(self.follower_id)


class FollowDeleted(EventData):
    event_type: ClassVar[str] = "follow.deleted"
    schema_version: ClassVar[int] = 1

    follower_id: Id
    followee_id: Id

    @property
    def subject(self) -> str:
        return str(self.follower_id)


class PostCreated(EventData):
    event_type: ClassVar[str] = "post.created"
    schema_version: ClassVar[int] = 1

    post_id: Id
    author_id: Id
    text: str
    reply_to: Id | None = None
    # Optional (added without a new version): the replied-to post's author, so a consumer need
    # not look the parent up; None when there is no reply_to, or from an older producer.
    reply_to_author_id: Id | None = None
    mention_ids: list[Id] = Field(default_factory=list[Id])
    # Optional (added without a new version): the mentioned usernames as resolved, in the order
    # of mention_ids, so another region can store the post as written; None from older producers.
    mention_usernames: list[str] | None = None
    hashtags: list[str] = Field(default_factory=list[str])

    @property
    def subject(self) -> str:
        return str(self.post_id)


class PostDeleted(EventData):
    event_type: ClassVar[str] = "post.deleted"
    schema_version: ClassVar[int] = 1

    post_id: Id
    author_id: Id

    @property
    def subject(self) -> str:
        return str(self.post_id)


def _registry(*models: type[EventData]) -> Mapping[tuple[str, int], type[EventData]]:
    registry: dict[tuple[str, int], type[EventData]] = {}
    for model in models:
        key = (model.event_type, model.schema_version)
        if key in registry:
            raise ValueError(f"two models for {key}")
        registry[key] = model
    return registry


EVENT_TYPES: Mapping[tuple[str, int], type[EventData]] = _registry(
    UserCreated, UserUpdated, FollowCreated, FollowDeleted, PostCreated, PostDeleted
)


def data_model(event_type: str, schema_version: int) -> type[EventData]:
    try:
        return EVENT_TYPES[(event_type, schema_version)]
    except KeyError:
        raise InvalidEventError(
            f"unknown event type {event_type!r} version {schema_version}"
        ) from None


def parse_data(event_type: str, schema_version: int, data: object) -> EventData:
    model = data_model(event_type, schema_version)
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise InvalidEventError(
            f"{event_type} v{schema_version} data does not validate: {exc.error_count()} errors"
        ) from exc
