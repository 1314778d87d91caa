"""API keys and sites (storage/database/accounts.py), the operator's event workflow
(storage/database/workflow.py): status columns on events and the audit trail of their steps.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import storage.database.engine

revision = "0007"
down_revision: str | None = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "api_keys",
        sa.Column("id", sa.String(length=16), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("sites", sa.JSON(), nullable=False),
        sa.Column("all_sites", sa.Boolean(), nullable=False),
        sa.Column("secret_sha256", sa.String(length=64), nullable=False),
        sa.Column("created_by", sa.String(length=128), nullable=False),
        sa.Column("created_at", storage.database.engine.UTCDateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", storage.database.engine.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "event_actions",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("event_id", sa.String(length=32), nullable=False),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.Column("from_status", sa.String(length=16), nullable=False),
        sa.Column("to_status", sa.String(length=16), nullable=False),
        sa.Column("actor", sa.String(length=128), nullable=False),
        sa.Column("note", sa.String(length=1024), nullable=False),
        sa.Column("at", storage.database.engine.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("event_actions", schema=None) as batch_op:
        batch_op.create_index("ix_event_actions_event", ["event_id", "id"], unique=False)

    op.create_table(
        "sites",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("address", sa.String(length=256), nullable=False),
        sa.Column("grid_id", sa.String(length=64), nullable=False),
        sa.Column("latitude", sa.Float(), nullable=True),
        sa.Column("longitude", sa.Float(), nullable=True),
        sa.Column("timezone", sa.String(length=64), nullable=False),
        sa.Column("updated_at", storage.database.engine.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("status", sa.String(length=16), server_default="new", nullable=False)
        )
        batch_op.add_column(
            sa.Column(
                "acknowledged_at", storage.database.engine.UTCDateTime(timezone=True), nullable=True
            )
        )
        batch_op.add_column(sa.Column("acknowledged_by", sa.String(length=128), nullable=True))
        batch_op.add_column(
            sa.Column(
                "closed_at", storage.database.engine.UTCDateTime(timezone=True), nullable=True
            )
        )
        batch_op.add_column(sa.Column("closed_by", sa.String(length=128), nullable=True))
        batch_op.create_index("ix_events_site_status_seq", ["site", "status", "seq"], unique=False)
        batch_op.create_index("ix_events_status_seq", ["status", "seq"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.drop_index("ix_events_status_seq")
        batch_op.drop_index("ix_events_site_status_seq")
        batch_op.drop_column("closed_by")
        batch_op.drop_column("closed_at")
        batch_op.drop_column("acknowledged_by")
        batch_op.drop_column("acknowledged_at")
        batch_op.drop_column("status")

    op.drop_table("sites")
    with op.batch_alter_table("event_actions", schema=None) as batch_op:
        batch_op.drop_index("ix_event_actions_event")

    op.drop_table("event_actions")
    op.drop_table("api_keys")
