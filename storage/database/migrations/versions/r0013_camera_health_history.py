"""Camera health history: one row per camera and minute, folded from its heartbeats.

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import storage.database.engine

revision = "0013"
down_revision: str | None = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "camera_health",
        sa.Column("camera_id", sa.String(length=64), nullable=False),
        sa.Column("minute", storage.database.engine.UTCDateTime(timezone=True), nullable=False),
        sa.Column("site", sa.String(length=64), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("heartbeats", sa.Integer(), nullable=False),
        sa.Column("input_fps_min", sa.Float(), nullable=False),
        sa.Column("input_fps_avg", sa.Float(), nullable=False),
        sa.Column("decode_fps_min", sa.Float(), nullable=False),
        sa.Column("decode_fps_avg", sa.Float(), nullable=False),
        sa.Column("bitrate_kbps_avg", sa.Float(), nullable=False),
        sa.Column("reconnects", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("camera_id", "minute"),
    )
    with op.batch_alter_table("camera_health", schema=None) as batch_op:
        batch_op.create_index("ix_camera_health_minute", ["minute"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("camera_health", schema=None) as batch_op:
        batch_op.drop_index("ix_camera_health_minute")
    op.drop_table("camera_health")
