"""GB/T 28181 devices (registered, pending or approved into a site), the channels their catalogs
list, and each site's settings for its devices (a password, an auto-approval prefix).

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from storage.database.engine import UTCDateTime

revision = "0021"
down_revision: str | None = "0020"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "gb_channels",
        sa.Column("device_id", sa.String(length=20), nullable=False),
        sa.Column("id", sa.String(length=20), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("manufacturer", sa.String(length=64), nullable=False),
        sa.Column("model", sa.String(length=64), nullable=False),
        sa.Column("civil_code", sa.String(length=20), nullable=False),
        sa.Column("parent_id", sa.String(length=128), nullable=False),
        sa.Column("business_group_id", sa.String(length=20), nullable=False),
        sa.Column("address", sa.String(length=128), nullable=False),
        sa.Column("status", sa.String(length=8), nullable=False),
        sa.Column("parental", sa.Boolean(), nullable=False),
        sa.Column("ptz_type", sa.Integer(), nullable=True),
        sa.Column("longitude", sa.Float(), nullable=True),
        sa.Column("latitude", sa.Float(), nullable=True),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("device_id", "id"),
    )
    op.create_table(
        "gb_devices",
        sa.Column("id", sa.String(length=20), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("site", sa.String(length=64), nullable=True),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("password", sa.Text(), nullable=True),
        sa.Column("transport", sa.String(length=8), nullable=False),
        sa.Column("host", sa.String(length=64), nullable=False),
        sa.Column("port", sa.Integer(), nullable=False),
        sa.Column("user_agent", sa.String(length=128), nullable=False),
        sa.Column("manufacturer", sa.String(length=64), nullable=False),
        sa.Column("model", sa.String(length=64), nullable=False),
        sa.Column("firmware", sa.String(length=64), nullable=False),
        sa.Column("channel_count", sa.Integer(), nullable=True),
        sa.Column("online", sa.Boolean(), nullable=False),
        sa.Column("offline_reason", sa.String(length=128), nullable=False),
        sa.Column("registered_at", UTCDateTime(), nullable=True),
        sa.Column("expires_at", UTCDateTime(), nullable=True),
        sa.Column("keepalive_at", UTCDateTime(), nullable=True),
        sa.Column("catalog_at", UTCDateTime(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "gb_sites",
        sa.Column("site", sa.String(length=64), nullable=False),
        sa.Column("password", sa.Text(), nullable=True),
        sa.Column("auto_approve_prefix", sa.String(length=20), nullable=False),
        sa.PrimaryKeyConstraint("site"),
    )


def downgrade() -> None:
    op.drop_table("gb_sites")
    op.drop_table("gb_devices")
    op.drop_table("gb_channels")
