"""The inbox's age index, so the relay's purge of old inbox entries reads only those.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-05
"""

from collections.abc import Sequence

from alembic import op

from terrascale.common.events import add_inbox_age_index, drop_inbox_age_index

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    add_inbox_age_index(op)


def downgrade() -> None:
    drop_inbox_age_index(op)
