"""Which partition an event goes to: Kafka-style, a stable hash of the subject.

The hash must never change (every producer and consumer of every version agrees on it), so it is
CRC-32 of the subject's UTF-8 bytes, not Python's per-process salted ``hash``.
"""

from __future__ import annotations

import zlib

CATEGORIES: tuple[str, ...] = ("user", "follow", "post")


def category_of(event_type: str) -> str:
    """``user.created`` -> ``user``: one set of partitions per category."""
    category, dot, _ = event_type.partition(".")
    if not dot or not category:
        raise ValueError(f"event type {event_type!r} has no category")
    return category


def partition_for(subject: str, partitions: int) -> int:
    if partitions < 1:
        raise ValueError("partitions must be at least 1")
    return zlib.crc32(subject.encode()) % partitions
