"""Keyset pagination: a page ends at a position, and the opaque cursor is that position.

Lists are newest first, ordered by (created_at, other user id) descending: the id breaks ties
between follows made in the same microsecond, so the order is total and a page never repeats or
skips a row, whatever is inserted meanwhile (new follows sort before any cursor).
"""

from __future__ import annotations

import base64
import re
import zlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from terrascale.common.ids import MAX_ID
from terrascale.graph.errors import InvalidCursorError

UNIX_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MICROSECOND = timedelta(microseconds=1)
MAX_MICROS = (datetime(9999, 12, 31, tzinfo=UTC) - UNIX_EPOCH) // MICROSECOND
MAX_CURSOR_LENGTH = 80
_ENCODED = re.compile(r"[A-Za-z0-9_-]+")
_DECODED = re.compile(r"((0|[1-9][0-9]{0,17}):([1-9][0-9]{0,18})):([0-9a-f]{8})")


@dataclass(frozen=True, slots=True)
class Position:
    """Where a row sits in a newest-first list: when the follow was made, and the other user."""

    created_at: datetime
    user_id: int


def _checksum(text: str) -> str:
    return f"{zlib.crc32(text.encode()):08x}"


def encode_cursor(position: Position) -> str:
    """URL-safe base64 (unpadded) of ``<microseconds since 1970>:<user id>:<crc32>``: exact,
    since PostgreSQL keeps timestamps to the microsecond. The checksum catches a cursor altered
    or cut short; it is not a signature, and needs none: a forged cursor only names another
    position in a list anyone may read."""
    micros = (position.created_at - UNIX_EPOCH) // MICROSECOND
    text = f"{micros}:{position.user_id}"
    raw = f"{text}:{_checksum(text)}".encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def decode_cursor(cursor: str) -> Position:
    """The position a cursor names; InvalidCursorError (400) for anything this service did not
    produce: bad characters, bad base64, a bad layout or checksum, values out of range."""
    if len(cursor) > MAX_CURSOR_LENGTH or not _ENCODED.fullmatch(cursor):
        raise InvalidCursorError("The cursor is malformed; use next_cursor from a previous page.")
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("ascii")
    except ValueError:  # binascii.Error and UnicodeDecodeError both are
        raw = ""
    match = _DECODED.fullmatch(raw)
    if match is None or _checksum(match[1]) != match[4]:
        raise InvalidCursorError("The cursor is malformed; use next_cursor from a previous page.")
    micros, user_id = int(match[2]), int(match[3])
    if micros > MAX_MICROS or user_id > MAX_ID:
        raise InvalidCursorError("The cursor is out of range; use next_cursor from a page.")
    position = Position(UNIX_EPOCH + micros * MICROSECOND, user_id)
    # One spelling per position: a cursor with altered padding bits is not one we issued.
    if encode_cursor(position) != cursor:
        raise InvalidCursorError("The cursor is malformed; use next_cursor from a previous page.")
    return position
