"""Shop alarm panels (account, zone -> cameras, arming) and the alarm clips they ask for.

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import storage.database.engine

revision = "0010"
down_revision: str | None = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "alarm_clips",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("event_id", sa.String(length=32), nullable=False),
        sa.Column("site", sa.String(length=64), nullable=False),
        sa.Column("camera_id", sa.String(length=64), nullable=False),
        sa.Column("alarm_at", storage.database.engine.UTCDateTime(timezone=True), nullable=False),
        sa.Column("pre_s", sa.Float(), nullable=False),
        sa.Column("post_s", sa.Float(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("taken_by", sa.String(length=64), nullable=True),
        sa.Column("created_at", storage.database.engine.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("alarm_clips", schema=None) as batch_op:
        batch_op.create_index("ix_alarm_clips_pending", ["state", "camera_id"], unique=False)

    op.create_table(
        "alarm_panels",
        sa.Column("site", sa.String(length=64), nullable=False),
        sa.Column("account", sa.String(length=32), nullable=False),
        sa.Column("zones", sa.JSON(), nullable=False),
        sa.Column("pre_alarm_s", sa.Float(), nullable=False),
        sa.Column("post_alarm_s", sa.Float(), nullable=False),
        sa.Column("gated_types", sa.JSON(), nullable=False),
        sa.Column("schedule", sa.JSON(), nullable=False),
        sa.Column("armed", sa.Boolean(), nullable=True),
        sa.Column("armed_by", sa.String(length=128), nullable=True),
        sa.Column("armed_at", storage.database.engine.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("site"),
        sa.UniqueConstraint("account"),
    )


def downgrade() -> None:
    op.drop_table("alarm_panels")
    with op.batch_alter_table("alarm_clips", schema=None) as batch_op:
        batch_op.drop_index("ix_alarm_clips_pending")

    op.drop_table("alarm_clips")
