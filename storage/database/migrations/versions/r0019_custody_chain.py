"""The custody log becomes a hash chain: each entry's SHA-256 and its links to the entry
before it (in the whole log and in its event's log), and a head row. Existing entries are
numbered 1, 2, 3, ... in their order and chained as they stand.

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from storage.database.custody_chain import GENESIS, entry_sha256
from storage.database.engine import UTCDateTime

revision = "0019"
down_revision: str | None = "0018"
branch_labels = None
depends_on = None

HASHES = ("previous_sha256", "event_previous_sha256", "sha256")
LOG = sa.table(
    "custody_log",
    sa.column("id", sa.Integer()),
    sa.column("event_id", sa.String()),
    sa.column("object_key", sa.String()),
    sa.column("action", sa.String()),
    sa.column("actor", sa.String()),
    sa.column("client", sa.String()),
    sa.column("detail", sa.String()),
    sa.column("at", UTCDateTime()),
    *(sa.column(name, sa.String()) for name in HASHES),
)


def upgrade() -> None:
    with op.batch_alter_table("custody_log") as table:
        for name in HASHES:
            table.add_column(sa.Column(name, sa.String(length=64), nullable=True))
    head = op.create_table(
        "custody_head",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    bind = op.get_bind()
    rows = bind.execute(sa.select(LOG).order_by(LOG.c.id)).mappings().all()
    previous, of_event = GENESIS, dict[str, str]()
    for seq, row in enumerate(rows, start=1):
        entry = {
            **{name: row[name] for name in ("event_id", "object_key", "action", "actor")},
            "seq": seq,
            "client": row["client"],
            "detail": row["detail"] or "",
            "at": row["at"].isoformat(timespec="microseconds"),
            "previous_sha256": previous,
            "event_previous_sha256": of_event.get(row["event_id"], GENESIS),
        }
        sha256 = entry_sha256(entry)
        links = {name: entry[name] for name in ("previous_sha256", "event_previous_sha256")}
        values = {"id": seq, "detail": entry["detail"], "sha256": sha256, **links}
        bind.execute(sa.update(LOG).where(LOG.c.id == row["id"]).values(**values))
        previous = of_event[row["event_id"]] = sha256
    if rows:
        op.bulk_insert(head, [{"id": 1, "seq": len(rows), "sha256": previous}])
    with op.batch_alter_table("custody_log") as table:
        for name in HASHES:
            table.alter_column(name, existing_type=sa.String(length=64), nullable=False)


def downgrade() -> None:
    op.drop_table("custody_head")
    with op.batch_alter_table("custody_log") as table:
        for name in HASHES:
            table.drop_column(name)
