"""The inbox's age index (version 2 of the outbox tables).

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-05
"""

from collections.abc import Sequence

from alembic import op

from terrascale.common.events.outbox import add_inbox_age_index, drop_inbox_age_index

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    add_inbox_age_index(op)


def downgrade() -> None:
    drop_inbox_age_index(op)
