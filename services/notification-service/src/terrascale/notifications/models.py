"""Tables owned by the Notification Service.

Each recipient's notifications are numbered 1, 2, 3, ... by ``seq`` without gaps, so a seq is
at once the notification's public id, the stream's ``Last-Event-ID`` and a pagination cursor.
``notification_state`` holds the last seq given out and the last one read: the unread count is
their difference (exact, and one row read). Inserting locks the recipient's state row, so seqs
are assigned and committed in order and a reader that has seen seq n will never later find a
smaller one appear. No foreign keys: users and posts belong to other services.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, CheckConstraint, DateTime, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from terrascale.common.db import new_metadata


class Base(DeclarativeBase):
    """The declarative base of this service's tables."""

    metadata = new_metadata()


KINDS = ("follow", "mention", "reply")


class Notification(Base):
    """``actor_id`` did something to ``recipient_id``: followed them (``subject_id`` is the
    follower, the actor again), mentioned them or replied to them (``subject_id`` is the post)."""

    __tablename__ = "notification"

    recipient_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    kind: Mapped[str] = mapped_column(Text)
    actor_id: Mapped[int] = mapped_column(BigInteger)
    subject_id: Mapped[int] = mapped_column(BigInteger)
    # When the event happened, not when this service consumed it.
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        # One notification per fact, however often its event is delivered or a follow redone.
        UniqueConstraint(
            "recipient_id", "kind", "actor_id", "subject_id", name="uq_notification_fact"
        ),
        CheckConstraint("kind IN ('follow', 'mention', 'reply')", name="known_kind"),
        CheckConstraint("seq >= 1", name="seq_positive"),
    )


class NotificationState(Base):
    """Per recipient: the last seq assigned and the last seq read (0 before any)."""

    __tablename__ = "notification_state"

    recipient_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    last_seq: Mapped[int] = mapped_column(BigInteger, server_default="0")
    last_read_seq: Mapped[int] = mapped_column(BigInteger, server_default="0")

    __table_args__ = (
        CheckConstraint("last_read_seq >= 0 AND last_read_seq <= last_seq", name="read_in_range"),
    )
