"""Notifications numbered per recipient, and each recipient's last and last-read numbers.

Revision ID: 0001
Revises:
Create Date: 2026-11-26
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "notification",
        sa.Column("recipient_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("seq", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("actor_id", sa.BigInteger(), nullable=False),
        sa.Column("subject_id", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "kind IN ('follow', 'mention', 'reply')", name=op.f("ck_notification_known_kind")
        ),
        sa.CheckConstraint("seq >= 1", name=op.f("ck_notification_seq_positive")),
        # (recipient_id, seq) serves every read: pages, the stream's catch-up, both directions.
        sa.PrimaryKeyConstraint("recipient_id", "seq", name=op.f("pk_notification")),
        sa.UniqueConstraint(
            "recipient_id", "kind", "actor_id", "subject_id", name="uq_notification_fact"
        ),
    )
    op.create_table(
        "notification_state",
        sa.Column("recipient_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("last_seq", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("last_read_seq", sa.BigInteger(), server_default="0", nullable=False),
        sa.CheckConstraint(
            "last_read_seq >= 0 AND last_read_seq <= last_seq",
            name=op.f("ck_notification_state_read_in_range"),
        ),
        sa.PrimaryKeyConstraint("recipient_id", name=op.f("pk_notification_state")),
    )


def downgrade() -> None:
    op.drop_table("notification_state")
    op.drop_table("notification")
