"""Baseline: the schema `create_all` made before there were migrations.

Revision ID: 0001
Revises:
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision: str | None = None
branch_labels = None
depends_on = None

UTC_DATETIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "events",
        sa.Column("seq", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("site", sa.String(64), nullable=False),
        sa.Column("camera_id", sa.String(64), nullable=False),
        sa.Column("type", sa.String(32), nullable=False),
        sa.Column("label", sa.String(32), nullable=False),
        sa.Column("zone", sa.String(64), nullable=False),
        sa.Column("severity", sa.String(8), nullable=False),
        sa.Column("detail", sa.String(64), nullable=False),
        sa.Column("alarm_method", sa.Integer(), nullable=True),
        sa.Column("alarm_type", sa.Integer(), nullable=True),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("started_at", UTC_DATETIME, nullable=False),
        sa.Column("ended_at", UTC_DATETIME, nullable=True),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("box", sa.JSON(), nullable=True),
        sa.Column("snapshot_key", sa.String(256), nullable=True),
        sa.Column("snapshot_sha256", sa.String(64), nullable=True),
        sa.Column("clip_key", sa.String(256), nullable=True),
        sa.Column("clip_sha256", sa.String(64), nullable=True),
        sa.Column("clip_start", UTC_DATETIME, nullable=True),
        sa.Column("clip_end", UTC_DATETIME, nullable=True),
        sa.Column("clip_error", sa.String(256), nullable=True),
        sa.Column("created_at", UTC_DATETIME, nullable=False),
        sa.Column("updated_at", UTC_DATETIME, nullable=False),
        sa.PrimaryKeyConstraint("seq"),
        sa.UniqueConstraint("id"),
    )
    op.create_index("ix_events_camera_started", "events", ["camera_id", "started_at"])
    op.create_index("ix_events_site_started", "events", ["site", "started_at"])
    op.create_index("ix_events_type_started", "events", ["type", "started_at"])
    op.create_table(
        "camera_status",
        sa.Column("camera_id", sa.String(64), nullable=False),
        sa.Column("site", sa.String(64), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("reasons", sa.String(256), nullable=True),
        sa.Column("input_fps", sa.Float(), nullable=False),
        sa.Column("decode_fps", sa.Float(), nullable=False),
        sa.Column("expected_fps", sa.Float(), nullable=True),
        sa.Column("bitrate_kbps", sa.Float(), nullable=False),
        sa.Column("decoded_frames", sa.JSON(), nullable=False),
        sa.Column("corrupt_packets", sa.Integer(), nullable=False),
        sa.Column("decode_errors", sa.Integer(), nullable=False),
        sa.Column("timestamp_jumps", sa.Integer(), nullable=False),
        sa.Column("reconnects", sa.Integer(), nullable=False),
        sa.Column("last_frame_at", UTC_DATETIME, nullable=True),
        sa.Column("offline_since", UTC_DATETIME, nullable=True),
        sa.Column("error", sa.String(256), nullable=True),
        sa.Column("worker_id", sa.String(64), nullable=True),
        sa.Column("updated_at", UTC_DATETIME, nullable=False),
        sa.PrimaryKeyConstraint("camera_id"),
    )
    op.create_table(
        "camera_leases",
        sa.Column("camera_id", sa.String(64), nullable=False),
        sa.Column("worker_id", sa.String(64), nullable=True),
        sa.Column("expires_at", UTC_DATETIME, nullable=False),
        sa.PrimaryKeyConstraint("camera_id"),
    )
    op.create_table(
        "workers",
        sa.Column("worker_id", sa.String(64), nullable=False),
        sa.Column("seen_at", UTC_DATETIME, nullable=False),
        sa.PrimaryKeyConstraint("worker_id"),
    )


def downgrade() -> None:
    op.drop_table("workers")
    op.drop_table("camera_leases")
    op.drop_table("camera_status")
    op.drop_table("events")
