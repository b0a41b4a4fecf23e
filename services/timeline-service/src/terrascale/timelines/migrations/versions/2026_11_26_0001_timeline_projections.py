"""The follow graph and known posts, as this service keeps them.

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
        "follow_edge",
        sa.Column("follower_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("followee_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.PrimaryKeyConstraint("follower_id", "followee_id", name=op.f("pk_follow_edge")),
    )
    op.create_index("ix_follow_edge_followee", "follow_edge", ["followee_id", "follower_id"])
    op.create_table(
        "known_post",
        sa.Column("post_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("author_id", sa.BigInteger(), nullable=False),
        sa.Column("fanned_out", sa.Boolean(), nullable=False),
        sa.Column("deleted", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.PrimaryKeyConstraint("post_id", name=op.f("pk_known_post")),
    )
    op.create_index(
        "ix_known_post_fanned_out",
        "known_post",
        ["author_id", sa.text("post_id DESC")],
        postgresql_where=sa.text("fanned_out AND NOT deleted"),
    )
    op.create_index(
        "ix_known_post_merged",
        "known_post",
        ["author_id", sa.text("post_id DESC")],
        postgresql_where=sa.text("NOT fanned_out AND NOT deleted"),
    )


def downgrade() -> None:
    op.drop_table("known_post")
    op.drop_table("follow_edge")
