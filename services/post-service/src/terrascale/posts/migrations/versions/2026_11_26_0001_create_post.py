"""Create post, post_idempotency_key, known_user and the id generator.

Revision ID: 0001
Revises:
Create Date: 2026-11-26
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# 41 bits of milliseconds since 2026-01-01T00:00:00Z, 13 bits of shard, 10 bits of sequence:
# the layout of terrascale.common.ids. A post is minted on its author's shard. One sequence per
# database keeps ids unique across every process and replica without coordination (up to 1,024
# ids per millisecond per database).
NEXT_ID = """
CREATE FUNCTION next_id(shard integer) RETURNS bigint
LANGUAGE sql VOLATILE PARALLEL UNSAFE AS $$
    SELECT ((floor(extract(epoch FROM clock_timestamp()) * 1000)::bigint - 1767225600000) << 23)
         | ((shard & 8191)::bigint << 10)
         | (nextval('id_sequence') % 1024)
$$
"""


def upgrade() -> None:
    op.execute("CREATE SEQUENCE id_sequence")
    op.execute(NEXT_ID)
    op.create_table(
        "post",
        sa.Column("id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("author_id", sa.BigInteger(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("reply_to", sa.BigInteger(), nullable=True),
        sa.Column(
            "mentions",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'[]'::jsonb"),
            nullable=False,
        ),
        sa.Column(
            "hashtags",
            postgresql.ARRAY(sa.Text()),
            server_default=sa.text("'{}'"),
            nullable=False,
        ),
        sa.Column(
            "urls", postgresql.ARRAY(sa.Text()), server_default=sa.text("'{}'"), nullable=False
        ),
        sa.Column("version", sa.Integer(), server_default="1", nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("char_length(text) BETWEEN 1 AND 500", name=op.f("ck_post_text_length")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_post")),
    )
    op.create_index(
        "ix_post_author_id_id",
        "post",
        ["author_id", sa.text("id DESC")],
        postgresql_where=sa.text("deleted_at IS NULL"),
    )
    op.create_table(
        "post_idempotency_key",
        sa.Column("author_id", sa.BigInteger(), nullable=False),
        sa.Column("key", sa.String(length=255), nullable=False),
        sa.Column("request_hash", sa.LargeBinary(length=32), nullable=False),
        sa.Column("post_id", sa.BigInteger(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("author_id", "key", name=op.f("pk_post_idempotency_key")),
    )
    op.create_index(
        op.f("ix_post_idempotency_key_created_at"), "post_idempotency_key", ["created_at"]
    )
    op.create_table(
        "known_user",
        sa.Column("id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("username", sa.String(length=30), nullable=False),
        sa.Column("username_lower", sa.String(length=30), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_known_user")),
        sa.UniqueConstraint("username_lower", name=op.f("uq_known_user_username_lower")),
    )


def downgrade() -> None:
    op.drop_table("known_user")
    op.drop_index(op.f("ix_post_idempotency_key_created_at"), table_name="post_idempotency_key")
    op.drop_table("post_idempotency_key")
    op.drop_index("ix_post_author_id_id", table_name="post")
    op.drop_table("post")
    op.execute("DROP FUNCTION next_id(integer)")
    op.execute("DROP SEQUENCE id_sequence")
