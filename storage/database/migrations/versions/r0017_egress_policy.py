"""The egress policy: the private networks a site's cameras live on, and whether a webhook
was made with an admin's key (existing ones count as not: they are checked from now on).

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0017"
down_revision: str | None = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("sites") as table:
        table.add_column(sa.Column("networks", sa.JSON(), nullable=False, server_default="[]"))
    with op.batch_alter_table("webhook_subscriptions") as table:
        table.add_column(
            sa.Column("by_admin", sa.Boolean(), nullable=False, server_default=sa.false())
        )


def downgrade() -> None:
    with op.batch_alter_table("webhook_subscriptions") as table:
        table.drop_column("by_admin")
    with op.batch_alter_table("sites") as table:
        table.drop_column("networks")
