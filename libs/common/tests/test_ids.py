from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from pydantic import BaseModel, ValidationError

from terrascale.common.ids import (
    EPOCH,
    MAX_ID,
    MAX_SEQUENCE,
    MAX_SHARD,
    Id,
    compose_id,
    decode_id,
)


class Thing(BaseModel):
    id: Id


def test_compose_and_decode_round_trip() -> None:
    created_at = datetime(2027, 3, 4, 5, 6, 7, 890_000, tzinfo=UTC)
    value = compose_id(created_at=created_at, shard=4321, sequence=999)
    parts = decode_id(value)
    assert (parts.created_at, parts.shard, parts.sequence) == (created_at, 4321, 999)


def test_ids_sort_by_creation_time_whatever_the_shard() -> None:
    earlier = compose_id(
        created_at=EPOCH + timedelta(milliseconds=10), shard=MAX_SHARD, sequence=MAX_SEQUENCE
    )
    later = compose_id(created_at=EPOCH + timedelta(milliseconds=11), shard=0, sequence=0)
    assert earlier < later


def test_largest_id_fits_in_a_signed_bigint() -> None:
    last_millisecond = EPOCH + timedelta(milliseconds=(1 << 40) - 1)
    assert compose_id(created_at=last_millisecond, shard=MAX_SHARD, sequence=MAX_SEQUENCE) == MAX_ID


@pytest.mark.parametrize(
    ("shard", "sequence", "created_at"),
    [
        (MAX_SHARD + 1, 0, EPOCH),
        (-1, 0, EPOCH),
        (0, MAX_SEQUENCE + 1, EPOCH),
        (0, 0, EPOCH - timedelta(milliseconds=1)),
        (0, 0, EPOCH + timedelta(milliseconds=1 << 40)),
    ],
)
def test_compose_rejects_out_of_range_parts(
    shard: int, sequence: int, created_at: datetime
) -> None:
    with pytest.raises(ValueError, match=r"must be|outside"):
        compose_id(created_at=created_at, shard=shard, sequence=sequence)


@pytest.mark.parametrize("value", [-1, MAX_ID + 1])
def test_decode_rejects_non_ids(value: int) -> None:
    with pytest.raises(ValueError, match="63-bit"):
        decode_id(value)


@pytest.mark.parametrize("raw", [42, "42", "0042"])
def test_api_ids_accept_integers_and_decimal_strings(raw: object) -> None:
    assert Thing.model_validate({"id": raw}).id == 42


@pytest.mark.parametrize(
    "raw", ["", "abc", "-5", "4.2", 4.2, True, None, 0, MAX_ID + 1, "9" * 20, "١٢", " 42"]
)
def test_api_ids_reject_everything_else(raw: object) -> None:
    with pytest.raises(ValidationError):
        Thing.model_validate({"id": raw})


def test_api_ids_serialize_as_strings_in_json_only() -> None:
    thing = Thing(id=MAX_ID)
    assert thing.model_dump_json() == f'{{"id":"{MAX_ID}"}}'
    assert thing.model_dump() == {"id": MAX_ID}


def test_api_id_schema_differs_for_input_and_output() -> None:
    output_schema = Thing.model_json_schema(mode="serialization")["properties"]["id"]
    input_schema = Thing.model_json_schema(mode="validation")["properties"]["id"]
    assert output_schema["type"] == "string"
    assert {option["type"] for option in input_schema["oneOf"]} == {"string", "integer"}
