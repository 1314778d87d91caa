"""The catalogue of 24/7 recording segments: one row per stored segment.

The segments are cut, stored and stitched by storage/media/continuous.py.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Index, Integer, String, select
from sqlalchemy.orm import Mapped, mapped_column

from storage.database.engine import Base, Database, UTCDateTime, to_datetime, utcnow


class RecordingRow(Base):
    """One stored recording segment: where it is, what it covers, and the stream timestamp
    of its first packet (the segment file itself starts at zero), for stitching."""

    __tablename__ = "recordings"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    site: Mapped[str] = mapped_column(String(64))
    camera_id: Mapped[str] = mapped_column(String(64))
    start: Mapped[datetime] = mapped_column(UTCDateTime())
    end: Mapped[datetime] = mapped_column(UTCDateTime())
    key: Mapped[str] = mapped_column(String(256), unique=True)
    size: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    connection: Mapped[int] = mapped_column(Integer)
    first_pts: Mapped[int] = mapped_column(BigInteger)
    time_base: Mapped[str] = mapped_column(String(32))  # "1/90000"
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    __table_args__ = (Index("ix_recordings_camera_start", "camera_id", "start"),)


def segments_between(
    database: Database, camera_id: str, start: float, end: float
) -> list[RecordingRow]:
    """The stored segments of a camera that overlap `start`..`end`, oldest first."""
    since, until = to_datetime(start), to_datetime(end)
    statement = (
        select(RecordingRow)
        .where(RecordingRow.camera_id == camera_id)
        .where(RecordingRow.end > since, RecordingRow.start < until)
        .order_by(RecordingRow.start)
    )
    with database.sessions() as session:
        return list(session.scalars(statement))
