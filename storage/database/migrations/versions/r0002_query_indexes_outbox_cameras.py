"""Indexes for the console's queries; the webhook outbox and API-managed cameras.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26

The event list is newest first by `seq` with a `seq` cursor, so each filter gets an index
ending in `seq` (an equality filter then reads its newest rows in order and stops after one
page). A time range picks its page's seqs from a `(column, started_at, seq)` index alone (an
index-only scan: no table rows read until the 50 are known), so the baseline's
`(column, started_at)` indexes get `seq` appended. bench/index.py has the figures.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision: str | None = "0001"
branch_labels = None
depends_on = None

UTC_DATETIME = sa.DateTime(timezone=True)

# (column, started_at) in the baseline, with seq now.
WIDENED = {
    "ix_events_camera_started": "camera_id",
    "ix_events_site_started": "site",
    "ix_events_type_started": "type",
}
EVENT_INDEXES = {
    "ix_events_site_seq": ["site", "seq"],
    "ix_events_camera_seq": ["camera_id", "seq"],
    "ix_events_type_seq": ["type", "seq"],
    "ix_events_state_seq": ["state", "seq"],
    "ix_events_site_type_seq": ["site", "type", "seq"],
    "ix_events_site_state_seq": ["site", "state", "seq"],
    "ix_events_started": ["started_at", "seq"],
}


def upgrade() -> None:
    for name, column in WIDENED.items():
        op.drop_index(name, "events")
        op.create_index(name, "events", [column, "started_at", "seq"])
    for name, columns in EVENT_INDEXES.items():
        op.create_index(name, "events", columns)
    op.create_index("ix_camera_leases_worker", "camera_leases", ["worker_id"])
    op.create_table(
        "webhook_outbox",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("subscription_id", sa.String(64), nullable=False),
        sa.Column("event_id", sa.String(32), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", UTC_DATETIME, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("last_error", sa.String(512), nullable=True),
        sa.Column("created_at", UTC_DATETIME, nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_webhook_outbox_due", "webhook_outbox", ["state", "next_attempt_at"])
    op.create_index("ix_webhook_outbox_event", "webhook_outbox", ["event_id"])
    op.create_table(
        "cameras",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("site", sa.String(64), nullable=False),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("url", sa.String(1024), nullable=False),
        sa.Column("username", sa.String(256), nullable=True),
        sa.Column("password", sa.String(256), nullable=True),
        sa.Column("config", sa.JSON(), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("updated_at", UTC_DATETIME, nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_cameras_site", "cameras", ["site"])


def downgrade() -> None:
    op.drop_table("cameras")
    op.drop_table("webhook_outbox")
    op.drop_index("ix_camera_leases_worker", "camera_leases")
    for name in reversed(EVENT_INDEXES):
        op.drop_index(name, "events")
    for name, column in WIDENED.items():
        op.drop_index(name, "events")
        op.create_index(name, "events", [column, "started_at"])
