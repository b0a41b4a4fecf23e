"""Envelope, schema registry, partitioning, trace context and settings: no server needed."""

from __future__ import annotations

import json
import re
import uuid
import zlib
from collections import Counter
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from pydantic import JsonValue

from terrascale.common.events import (
    EVENT_TYPES,
    Envelope,
    EventSettings,
    FollowCreated,
    FollowDeleted,
    InvalidEventError,
    PostCreated,
    PostDeleted,
    UserCreated,
    UserUpdated,
    category_of,
    load_event_settings,
    partition_for,
)
from terrascale.common.events.envelope import trace_context
from terrascale.common.events.schemas import data_model, parse_data
from terrascale.common.settings import ConfigError

DOCS = Path(__file__).resolve().parents[4] / "docs" / "events.md"
BIG_ID = 2**62 + 12345  # past 2**53: must travel as a string


def test_envelope_round_trips_through_json() -> None:
    data = PostCreated(
        post_id=BIG_ID,
        author_id=7,
        text="hello #world @ann",
        reply_to=None,
        mention_ids=[BIG_ID + 1],
        hashtags=["world"],
    )
    envelope = Envelope.wrap(data, source="post-service")

    raw = envelope.to_json()
    again = Envelope.from_json(raw)

    assert again == envelope
    assert again.payload() == data
    assert again.data_as(PostCreated) == data
    document = json.loads(raw)
    assert document["type"] == "post.created"
    assert document["schema_version"] == 1
    assert document["subject"] == str(BIG_ID)
    assert document["data"]["post_id"] == str(BIG_ID)
    assert document["data"]["mention_ids"] == [str(BIG_ID + 1)]
    assert document["time"].endswith("Z")
    assert uuid.UUID(document["id"]) == envelope.id
    assert envelope.category == "post"


def test_time_is_normalised_to_utc() -> None:
    envelope = Envelope.wrap(UserCreated(user_id=1, username="ann"), source="users")
    shifted = envelope.model_copy(
        update={"time": envelope.time.astimezone(timezone(timedelta(hours=5)))}
    ).model_dump(mode="json")
    assert Envelope.model_validate(shifted).time.utcoffset() == timedelta(0)


@pytest.mark.parametrize(
    ("data", "subject"),
    [
        (UserCreated(user_id=1, username="ann"), "1"),
        (UserUpdated(user_id=2, display_name="Ann", bio=None), "2"),
        (FollowCreated(follower_id=3, followee_id=4), "3"),
        (FollowDeleted(follower_id=3, followee_id=4), "3"),
        (PostDeleted(post_id=5, author_id=1), "5"),
    ],
)
def test_each_event_names_its_aggregate_as_subject(data: UserCreated, subject: str) -> None:
    envelope = Envelope.wrap(data, source="test")
    assert envelope.subject == subject
    assert Envelope.from_json(envelope.to_json()).payload() == data


def test_registry_rejects_unknown_type_and_version() -> None:
    with pytest.raises(InvalidEventError, match=r"unknown event type 'user\.exploded'"):
        data_model("user.exploded", 1)
    with pytest.raises(InvalidEventError, match="version 2"):
        parse_data("user.created", 2, {"user_id": "1", "username": "ann"})
    with pytest.raises(InvalidEventError, match="does not validate"):
        parse_data("user.created", 1, {"user_id": "not a number", "username": "ann"})
    envelope = Envelope.wrap(UserCreated(user_id=1, username="ann"), source="users")
    unknown = envelope.model_copy(update={"schema_version": 9})
    with pytest.raises(InvalidEventError):
        unknown.payload()
    with pytest.raises(InvalidEventError, match=r"is not user\.updated"):
        envelope.data_as(UserUpdated)
    broken = envelope.model_copy(update={"data": {"user_id": "x"}})
    with pytest.raises(InvalidEventError, match="does not validate"):
        broken.data_as(UserCreated)


def test_malformed_envelopes_are_invalid_events() -> None:
    with pytest.raises(InvalidEventError, match="malformed envelope"):
        Envelope.from_json(b"{not json")
    with pytest.raises(InvalidEventError):
        Envelope.from_json(json.dumps({"id": str(uuid.uuid4()), "type": "nodot"}))


def test_consumers_ignore_fields_they_do_not_know() -> None:
    data: dict[str, JsonValue] = {"user_id": "1", "username": "ann", "added_later": True}
    assert parse_data("user.created", 1, data) == UserCreated(user_id=1, username="ann")


def test_partition_is_stable_and_in_range() -> None:
    # Fixed values: a change of hash would silently reorder every subject's events.
    subjects = ("1", "42", "1234567890123456789")
    assert [partition_for(s, 8) for s in subjects] == [7, 0, 1]
    assert [partition_for(s, 8) for s in subjects] == [zlib.crc32(s.encode()) % 8 for s in subjects]
    spread = Counter(partition_for(str(n), 8) for n in range(8000))
    assert set(spread) == set(range(8))
    assert min(spread.values()) > 800  # roughly even
    assert all(partition_for(str(n), 1) == 0 for n in range(100))
    with pytest.raises(ValueError, match="at least 1"):
        partition_for("1", 0)


def test_category_is_the_part_before_the_dot() -> None:
    assert category_of("user.created") == "user"
    assert category_of("follow.deleted") == "follow"
    with pytest.raises(ValueError, match="no category"):
        category_of("created")
    with pytest.raises(ValueError, match="no category"):
        category_of(".created")


def test_traceparent_is_captured_from_the_current_span() -> None:
    tracer = TracerProvider().get_tracer("test")
    assert Envelope.wrap(UserCreated(user_id=1, username="a"), source="t").traceparent is None
    with tracer.start_as_current_span("request") as span:
        envelope = Envelope.wrap(UserCreated(user_id=1, username="a"), source="t")
    context = span.get_span_context()
    flags = f"{context.trace_flags:02x}"
    assert envelope.traceparent == f"00-{context.trace_id:032x}-{context.span_id:016x}-{flags}"
    child = tracer.start_span("process", context=trace_context(envelope.traceparent))
    assert isinstance(child, ReadableSpan)
    assert child.parent is not None
    assert child.parent.span_id == context.span_id


def test_docs_table_lists_every_registered_event_with_its_fields() -> None:
    rows = [
        [cell.strip() for cell in line.strip().strip("|").split("|")]
        for line in DOCS.read_text().splitlines()
        if re.match(r"^\|\s*`?[a-z]+\.[a-z_]+`?\s*\|", line)
    ]
    documented = {(row[0].strip("`"), int(row[1])): row[4] for row in rows}
    assert set(documented) == set(EVENT_TYPES)
    for key, model in EVENT_TYPES.items():
        for name in model.model_fields:
            assert f"`{name}`" in documented[key], f"{key} does not document {name}"


def test_event_settings_read_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EVENT_BUS", "nats")
    monkeypatch.setenv("NATS_URL", "nats://broker:4222")
    monkeypatch.setenv("EVENT_PARTITIONS", "16")
    monkeypatch.setenv("EVENT_MAX_DELIVERIES", "7")
    settings = load_event_settings(_env_file=None)
    assert settings.event_bus == "nats"
    assert settings.nats_url == "nats://broker:4222"
    assert settings.event_partitions == 16
    assert settings.event_max_deliveries == 7
    defaults = EventSettings(_env_file=None)  # pyright: ignore[reportCallIssue]
    assert defaults.model_dump(include={"event_stream_maxlen", "event_claim_idle_seconds"}) == {
        "event_stream_maxlen": 100_000,
        "event_claim_idle_seconds": 30.0,
    }
    assert defaults.event_key_prefix == "terrascale:"


def test_bad_event_settings_name_the_variable() -> None:
    with pytest.raises(ConfigError, match="EVENT_PARTITIONS"):
        load_event_settings(_env_file=None, event_partitions=0)


def test_wrap_stamps_now() -> None:
    before = datetime.now().astimezone()
    envelope = Envelope.wrap(UserCreated(user_id=1, username="a"), source="t")
    assert before <= envelope.time <= datetime.now().astimezone()
