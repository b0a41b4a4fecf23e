"""Properties of the id layout (terrascale.common.ids): composing and decoding are inverse, ids
sort by time whatever their shard and sequence, and the API form accepts exactly the decimal
spellings of ids. What PostgreSQL mints is checked against a real database in the services'
suites (the Post Service's test_id_minting_properties.py)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from terrascale.common.ids import (
    EPOCH,
    MAX_ID,
    MAX_MILLIS,
    MAX_SEQUENCE,
    MAX_SHARD,
    Id,
    compose_id,
    decode_id,
)

millis = st.integers(min_value=0, max_value=MAX_MILLIS)
shards = st.integers(min_value=0, max_value=MAX_SHARD)
sequences = st.integers(min_value=0, max_value=MAX_SEQUENCE)
ids = st.integers(min_value=1, max_value=MAX_ID)


class Thing(BaseModel):
    id: Id


@given(millis, shards, sequences)
def test_decode_inverts_compose(offset_ms: int, shard: int, sequence: int) -> None:
    created_at = EPOCH + timedelta(milliseconds=offset_ms)
    value = compose_id(created_at=created_at, shard=shard, sequence=sequence)
    assert 0 <= value <= MAX_ID
    parts = decode_id(value)
    assert (parts.created_at, parts.shard, parts.sequence) == (created_at, shard, sequence)


@given(st.integers(min_value=0, max_value=MAX_ID))
def test_compose_inverts_decode(value: int) -> None:
    parts = decode_id(value)
    assert (
        compose_id(created_at=parts.created_at, shard=parts.shard, sequence=parts.sequence) == value
    )


@given(millis, st.integers(min_value=0, max_value=999))
def test_time_is_kept_to_the_millisecond_and_truncated(offset_ms: int, micros: int) -> None:
    created_at = EPOCH + timedelta(milliseconds=offset_ms, microseconds=micros)
    value = compose_id(created_at=created_at, shard=0, sequence=0)
    assert decode_id(value).created_at == EPOCH + timedelta(milliseconds=offset_ms)


parts = st.tuples(millis, shards, sequences)


@given(parts, parts)
def test_ids_sort_by_time_first(first: tuple[int, int, int], second: tuple[int, int, int]) -> None:
    first_id, second_id = (
        compose_id(created_at=EPOCH + timedelta(milliseconds=ms), shard=shard, sequence=sequence)
        for ms, shard, sequence in (first, second)
    )
    if first[0] != second[0]:
        assert (first_id < second_id) == (first[0] < second[0])
    assert (first_id == second_id) == (first == second)


@given(ids)
def test_api_ids_round_trip_as_json_strings_and_numbers(value: int) -> None:
    thing = Thing(id=value)
    assert thing.model_dump_json() == f'{{"id":"{value}"}}'
    assert Thing.model_validate_json(thing.model_dump_json()).id == value
    assert Thing.model_validate({"id": value}).id == value
    # Leading zeros are another spelling of the same id, up to the 19 digits of MAX_ID.
    assert Thing.model_validate({"id": str(value).zfill(19)}).id == value


@given(st.text(max_size=25))
def test_api_ids_accept_only_ascii_decimal_strings_in_range(raw: str) -> None:
    is_id = raw.isascii() and raw.isdecimal() and len(raw) <= 19 and 1 <= int(raw) <= MAX_ID
    if is_id:
        assert Thing.model_validate({"id": raw}).id == int(raw)
    else:
        with pytest.raises(ValidationError):
            Thing.model_validate({"id": raw})
