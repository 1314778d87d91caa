"""Camera credentials are stored sealed: room for the sealed values.

Revision ID: 0014
Revises: 0013
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision: str | None = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("cameras") as table:  # SQLite: the table is copied over
        for column in ("username", "password"):
            table.alter_column(column, type_=sa.Text(), existing_type=sa.String(length=256))


def downgrade() -> None:
    with op.batch_alter_table("cameras") as table:
        for column in ("username", "password"):
            table.alter_column(column, type_=sa.String(length=256), existing_type=sa.Text())
