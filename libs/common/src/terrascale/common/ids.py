"""64-bit time-sortable ids (Instagram/Snowflake layout) and their JSON representation.

Layout, most significant first: 41 bits of milliseconds since EPOCH, 13 bits of logical shard,
10 bits of sequence. PostgreSQL's bigint is signed, so the time field's top bit stays clear:
ids are positive for 2**40 ms (about 34.8 years, until late 2060).

Ids are minted inside PostgreSQL by ``next_id(shard)`` (created by each service's first
migration): every process and replica shares one sequence, so no coordination is needed and ids
are unique while a database mints at most 1,024 per millisecond. This module composes and
decodes ids and defines how they cross the API.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated

from pydantic import BeforeValidator, Field, PlainSerializer, WithJsonSchema

EPOCH = datetime(2026, 1, 1, tzinfo=UTC)
EPOCH_MS = int(EPOCH.timestamp() * 1000)
TIME_BITS = 41
SHARD_BITS = 13
SEQUENCE_BITS = 10
MAX_SHARD = (1 << SHARD_BITS) - 1
MAX_SEQUENCE = (1 << SEQUENCE_BITS) - 1
MAX_ID = (1 << 63) - 1
MAX_MILLIS = (1 << (TIME_BITS - 1)) - 1  # keeps the sign bit clear


@dataclass(frozen=True, slots=True)
class IdParts:
    created_at: datetime
    shard: int
    sequence: int


def compose_id(*, created_at: datetime, shard: int, sequence: int) -> int:
    if not 0 <= shard <= MAX_SHARD:
        raise ValueError(f"shard must be in 0..{MAX_SHARD}")
    if not 0 <= sequence <= MAX_SEQUENCE:
        raise ValueError(f"sequence must be in 0..{MAX_SEQUENCE}")
    millis = (created_at - EPOCH) // timedelta(milliseconds=1)
    if not 0 <= millis <= MAX_MILLIS:
        raise ValueError("created_at is outside the id's time range")
    return (millis << (SHARD_BITS + SEQUENCE_BITS)) | (shard << SEQUENCE_BITS) | sequence


def decode_id(value: int) -> IdParts:
    if not 0 <= value <= MAX_ID:
        raise ValueError("not a 63-bit id")
    millis = value >> (SHARD_BITS + SEQUENCE_BITS)
    return IdParts(
        created_at=EPOCH + timedelta(milliseconds=millis),
        shard=(value >> SEQUENCE_BITS) & MAX_SHARD,
        sequence=value & MAX_SEQUENCE,
    )


def parse_id(value: object) -> object:
    """Accept an id as a JSON integer or a decimal string; anything else is left to validation."""
    if isinstance(value, str) and value.isascii() and value.isdecimal() and len(value) <= 19:  # noqa: PLR2004
        return int(value)
    return value


ID_PATTERN = r"^[0-9]{1,19}$"

Id = Annotated[
    int,
    BeforeValidator(parse_id),
    Field(strict=True, ge=1, le=MAX_ID),
    PlainSerializer(str, return_type=str, when_used="json"),
    WithJsonSchema(
        {"oneOf": [{"type": "string", "pattern": ID_PATTERN}, {"type": "integer", "minimum": 1}]},
        mode="validation",
    ),
    WithJsonSchema(
        {"type": "string", "pattern": ID_PATTERN, "examples": ["1234567890123456789"]},
        mode="serialization",
    ),
]
"""An id in an API model: serialized as a string (JavaScript loses integers past 2**53)."""
