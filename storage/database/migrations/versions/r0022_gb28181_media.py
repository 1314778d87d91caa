"""GB/T 28181 media sessions (a worker's offer, the device's answer, the dialog to end), and
each camera's RTP packets lost and dropped in its heartbeat.

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from storage.database.engine import UTCDateTime

revision = "0022"
down_revision: str | None = "0021"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "gb_media",
        sa.Column("camera_id", sa.String(length=64), nullable=False),
        sa.Column("generation", sa.Integer(), nullable=False),
        sa.Column("device_id", sa.String(length=20), nullable=False),
        sa.Column("channel_id", sa.String(length=20), nullable=False),
        sa.Column("worker_id", sa.String(length=64), nullable=False),
        sa.Column("offer_host", sa.String(length=64), nullable=False),
        sa.Column("offer_port", sa.Integer(), nullable=False),
        sa.Column("transport", sa.String(length=16), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("ssrc", sa.String(length=10), nullable=False),
        sa.Column("answer_host", sa.String(length=64), nullable=False),
        sa.Column("answer_port", sa.Integer(), nullable=False),
        sa.Column("device_host", sa.String(length=64), nullable=False),
        sa.Column("call_id", sa.String(length=128), nullable=False),
        sa.Column("dialog", sa.JSON(), nullable=True),
        sa.Column("error", sa.String(length=256), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("camera_id"),
    )
    op.create_index("ix_gb_media_state", "gb_media", ["state"])
    op.create_index("ix_gb_media_call_id", "gb_media", ["call_id"])
    with op.batch_alter_table("camera_status") as batch:
        batch.add_column(sa.Column("media_lost", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(
            sa.Column("media_dropped", sa.Integer(), nullable=False, server_default="0")
        )


def downgrade() -> None:
    with op.batch_alter_table("camera_status") as batch:
        batch.drop_column("media_dropped")
        batch.drop_column("media_lost")
    op.drop_index("ix_gb_media_call_id", "gb_media")
    op.drop_index("ix_gb_media_state", "gb_media")
    op.drop_table("gb_media")
