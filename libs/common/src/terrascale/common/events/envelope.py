"""The envelope every event travels in (CloudEvents-like), and its trace context.

The W3C ``traceparent`` rides inside the envelope rather than in transport headers, so it
survives the outbox table and is the same on Redis Streams and NATS.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import TypeVar

from opentelemetry.context import Context
from opentelemetry.trace import Span, set_span_in_context
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    JsonValue,
    ValidationError,
    field_validator,
)

from terrascale.common.events.partitioning import category_of
from terrascale.common.events.schemas import EventData, InvalidEventError, parse_data

DataT = TypeVar("DataT", bound=EventData)

TYPE_PATTERN = r"^[a-z][a-z0-9_]*\.[a-z][a-z0-9_.]*$"
_PROPAGATOR = TraceContextTextMapPropagator()


def current_traceparent() -> str | None:
    """The current span's W3C traceparent, or None outside a recording span."""
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier)
    return carrier.get("traceparent")


def traceparent_of(span: Span) -> str | None:
    """``span``'s W3C traceparent (None when it is not recorded)."""
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier, context=set_span_in_context(span))
    return carrier.get("traceparent")


def trace_context(traceparent: str | None) -> Context:
    """A context whose parent is the producer's span (an empty one when there was none)."""
    return _PROPAGATOR.extract({"traceparent": traceparent} if traceparent else {})


class Envelope(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    id: uuid.UUID
    type: str = Field(pattern=TYPE_PATTERN, examples=["user.created"])
    schema_version: int = Field(ge=1)
    source: str = Field(min_length=1, description="Name of the producing service.")
    time: AwareDatetime
    subject: str = Field(min_length=1, description="Aggregate id; the partition key.")
    data: dict[str, JsonValue]
    traceparent: str | None = None
    replicated_from: str | None = Field(
        default=None,
        description="The region this event was produced in, set by the replicator that copied "
        "it here; null for events produced in this region.",
    )

    @field_validator("time")
    @classmethod
    def _in_utc(cls, value: datetime) -> datetime:
        return value.astimezone(UTC)

    @classmethod
    def wrap(cls, data: EventData, *, source: str) -> Envelope:
        """A new envelope for ``data``, stamped now and with the current trace context."""
        return cls(
            id=uuid.uuid4(),
            type=data.event_type,
            schema_version=data.schema_version,
            source=source,
            time=datetime.now(UTC),
            subject=data.subject,
            data=data.model_dump(mode="json"),
            traceparent=current_traceparent(),
        )

    @classmethod
    def from_json(cls, raw: bytes | str) -> Envelope:
        try:
            return cls.model_validate_json(raw)
        except ValidationError as exc:
            raise InvalidEventError(f"malformed envelope: {exc.error_count()} errors") from exc

    def to_json(self) -> bytes:
        return self.model_dump_json().encode()

    @property
    def category(self) -> str:
        return category_of(self.type)

    def payload(self) -> EventData:
        """``data`` validated by the model registered for (type, schema_version)."""
        return parse_data(self.type, self.schema_version, self.data)

    def data_as(self, model: type[DataT]) -> DataT:
        """``data`` as ``model``; refuses an envelope of another type or version."""
        if (self.type, self.schema_version) != (model.event_type, model.schema_version):
            raise InvalidEventError(
                f"{self.type} v{self.schema_version} is not "
                f"{model.event_type} v{model.schema_version}"
            )
        try:
            return model.model_validate(self.data)
        except ValidationError as exc:
            raise InvalidEventError(
                f"{self.type} v{self.schema_version} data does not validate: "
                f"{exc.error_count()} errors"
            ) from exc
