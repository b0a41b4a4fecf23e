"""The transactional outbox and the inbox of processed events.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26
"""

from collections.abc import Sequence

from alembic import op

from terrascale.common.events import create_outbox_tables, drop_outbox_tables

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    create_outbox_tables(op)


def downgrade() -> None:
    drop_outbox_tables(op)
