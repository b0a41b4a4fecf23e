"""Create user_account and the id generator.

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

# 41 bits of milliseconds since 2026-01-01T00:00:00Z, 13 bits of shard, 10 bits of sequence:
# the layout of terrascale.common.ids. One sequence per database keeps ids unique across every
# process and replica without coordination (up to 1,024 ids per millisecond per database).
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
        "user_account",
        sa.Column("id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("username", sa.String(length=30), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_user_account")),
    )
    op.create_index(
        "uq_user_account_username_lower",
        "user_account",
        [sa.text("lower(username)")],
        unique=True,
    )


def downgrade() -> None:
    op.drop_index("uq_user_account_username_lower", table_name="user_account")
    op.drop_table("user_account")
    op.execute("DROP FUNCTION next_id(integer)")
    op.execute("DROP SEQUENCE id_sequence")
