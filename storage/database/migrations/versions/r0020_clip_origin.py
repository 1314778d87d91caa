"""Where a clip rebuilt after its worker died came from (the journal, or the recording).

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0020"
down_revision: str | None = "0019"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("events") as table:
        table.add_column(sa.Column("clip_origin", sa.String(length=16), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("events") as table:
        table.drop_column("clip_origin")
