"""Hypothesis strategies and oracles the services' property tests share."""

from __future__ import annotations

from hypothesis import strategies as st

from terrascale.common.ids import MAX_ID

MAX_ID_DIGITS = 19

# What a client may send as a cursor or page size: any text, near-numbers (signs, underscores,
# spaces) and integers far outside 64 bits.
junk_query_values = st.one_of(
    st.text(st.characters(exclude_categories=("Cs",)), max_size=40),
    st.from_regex(r"[+-]?[0-9_ ]{0,25}", fullmatch=True),
    st.integers(min_value=-(2**80), max_value=2**80).map(str),
)


def is_decimal_id_text(value: str) -> bool:
    """ASCII digits only, at most as many as a 64-bit id has."""
    return value.isascii() and value.isdecimal() and len(value) <= MAX_ID_DIGITS


def is_canonical_id(value: str) -> bool:
    """A string the API accepts as an id: decimal, 1 to MAX_ID."""
    return is_decimal_id_text(value) and 1 <= int(value) <= MAX_ID
