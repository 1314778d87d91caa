"""An alarm account is unique within the sites a key sees, not across the deployment: two
sites may hold the same account, so that saving a panel says nothing of other sites.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-03
"""

from __future__ import annotations

from alembic import op

revision = "0016"
down_revision: str | None = "0015"
branch_labels = None
depends_on = None

# The account's unique constraint was made without a name: PostgreSQL named it itself, and on
# SQLite the table is copied over with the constraint named by this convention first.
SQLITE_NAMES = {"uq": "uq_%(table_name)s_%(column_0_name)s"}


def constraint_name() -> str:
    postgresql = op.get_bind().dialect.name == "postgresql"
    return "alarm_panels_account_key" if postgresql else "uq_alarm_panels_account"


def upgrade() -> None:
    with op.batch_alter_table("alarm_panels", naming_convention=SQLITE_NAMES) as table:
        table.drop_constraint(constraint_name(), type_="unique")
        table.create_index("ix_alarm_panels_account", ["account"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("alarm_panels", naming_convention=SQLITE_NAMES) as table:
        table.drop_index("ix_alarm_panels_account")
        table.create_unique_constraint(constraint_name(), ["account"])
