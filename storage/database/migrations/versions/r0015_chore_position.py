"""A standing chore's position: how far the MQTT publisher got in the event feed.

Revision ID: 0015
Revises: 0014
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision: str | None = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("chores", sa.Column("position", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("chores") as table:  # SQLite: the table is copied over
        table.drop_column("position")
