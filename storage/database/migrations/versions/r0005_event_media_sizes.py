"""Event media sizes: the clip's and the snapshot's bytes, for retention's byte budgets.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("events") as batch_op:
        batch_op.add_column(sa.Column("clip_size", sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column("snapshot_size", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("events") as batch_op:
        batch_op.drop_column("snapshot_size")
        batch_op.drop_column("clip_size")
