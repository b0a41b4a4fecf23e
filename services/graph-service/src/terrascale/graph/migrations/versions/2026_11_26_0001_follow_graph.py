"""Follow edges in both directions, counters, the known-user projection, outbox and inbox.

Revision ID: 0001
Revises:
Create Date: 2026-11-26
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from terrascale.common.events import create_outbox_tables, drop_outbox_tables

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "following_edge",
        sa.Column("follower_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("followee_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("follower_id", "followee_id", name=op.f("pk_following_edge")),
    )
    # (owner, created_at DESC, other DESC) holds every column a page reads: index-only scans.
    op.create_index(
        "ix_following_edge_recent",
        "following_edge",
        ["follower_id", sa.text("created_at DESC"), sa.text("followee_id DESC")],
    )
    op.create_table(
        "follower_edge",
        sa.Column("followee_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("follower_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("followee_id", "follower_id", name=op.f("pk_follower_edge")),
    )
    op.create_index(
        "ix_follower_edge_recent",
        "follower_edge",
        ["followee_id", sa.text("created_at DESC"), sa.text("follower_id DESC")],
    )
    op.create_table(
        "follow_count",
        sa.Column("user_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("followers", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("following", sa.BigInteger(), server_default="0", nullable=False),
        sa.CheckConstraint("followers >= 0", name=op.f("ck_follow_count_followers_not_negative")),
        sa.CheckConstraint("following >= 0", name=op.f("ck_follow_count_following_not_negative")),
        sa.PrimaryKeyConstraint("user_id", name=op.f("pk_follow_count")),
    )
    op.create_table(
        "known_user",
        sa.Column("id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("username", sa.String(length=30), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_known_user")),
    )
    create_outbox_tables(op)


def downgrade() -> None:
    drop_outbox_tables(op)
    op.drop_table("known_user")
    op.drop_table("follow_count")
    op.drop_index("ix_follower_edge_recent", table_name="follower_edge")
    op.drop_table("follower_edge")
    op.drop_index("ix_following_edge_recent", table_name="following_edge")
    op.drop_table("following_edge")
