"""Retention: event media and recordings older than their camera's policy (or beyond its
byte budget) are deleted, objects and index rows together; nothing under a legal hold or an
unexpired object-lock retention is ever deleted."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from minio.error import S3Error
from pydantic import Field
from sqlalchemy import delete, select

from ingest.config import StrictModel
from storage.evidence import Evidence
from storage.index import EventIndex, EventRow, utcnow
from storage.objects import ObjectStore
from storage.recording import RecordingRow

log = logging.getLogger(__name__)


class RetentionPolicy(StrictModel):
    """How long, and how much, a camera keeps; None: no limit of that kind."""

    event_days: float | None = Field(30.0, gt=0, description="event clips and snapshots")
    event_max_bytes: int | None = Field(None, gt=0, description="per camera, newest kept")
    recording_days: float | None = Field(7.0, gt=0, description="continuous recording")
    recording_max_bytes: int | None = Field(None, gt=0, description="per camera, newest kept")


class RetentionConfig(StrictModel):
    """The default policy, replaced whole by a site's, which a camera's replaces in turn.

    Example:
        >>> config = RetentionConfig(sites={"hq": RetentionPolicy(event_days=90)})
        >>> config.policy("hq", "gate").event_days, config.policy("shop-7", "door").event_days
        (90.0, 30.0)
    """

    default: RetentionPolicy = Field(default_factory=RetentionPolicy)
    sites: dict[str, RetentionPolicy] = Field(default_factory=dict)
    cameras: dict[str, RetentionPolicy] = Field(default_factory=dict)
    sweep_every_s: float = Field(3600.0, gt=0)

    def policy(self, site: str, camera_id: str) -> RetentionPolicy:
        return self.cameras.get(camera_id) or self.sites.get(site) or self.default


@dataclass(slots=True)
class SweepResult:
    """What one sweep deleted, and what it kept that was due."""

    events: list[str] = field(default_factory=list)
    recordings: list[str] = field(default_factory=list)
    held: list[str] = field(default_factory=list)  # events under a legal hold
    locked: list[str] = field(default_factory=list)  # objects the server still retains


class RetentionSweeper:
    """Deletes what the retention policies no longer keep. Events go when they ended longer
    ago than their camera's `event_days` and, oldest first, when the camera's clips and
    snapshots exceed `event_max_bytes`; recordings likewise by `recording_days` and
    `recording_max_bytes`. Objects are deleted first and the
    row only once they are gone, so an index row never points at nothing for long and an
    object is never left without its row; a refused deletion (object lock) keeps both.

    Example:
        >>> sweeper = RetentionSweeper(index, store, evidence, RetentionConfig())  # doctest: +SKIP
        >>> sweeper.sweep().events  # doctest: +SKIP
        ['4f1c...']
    """

    def __init__(
        self, index: EventIndex, store: ObjectStore, evidence: Evidence, config: RetentionConfig
    ) -> None:
        self.index = index
        self.store = store
        self.evidence = evidence
        self.config = config
        self._locked = self._versioned = False  # the bucket's, found out by each sweep

    def sweep(self, now: datetime | None = None) -> SweepResult:
        now = now or utcnow()
        result = SweepResult()
        # Asked once a sweep: a versioned bucket (object lock makes one) needs every version
        # of an object deleted, and a locked one its retention asked first.
        self._locked = self.evidence.bucket_locked()
        self._versioned = self._locked or self.store.versioned()
        self._sweep_events(now, result)
        self._sweep_recordings(now, result)
        if result.events or result.recordings:
            log.info(
                "retention: %d events and %d recording segments deleted",
                len(result.events), len(result.recordings),
            )  # fmt: skip
        return result

    def _sweep_events(self, now: datetime, result: SweepResult) -> None:
        with self.index.sessions() as session:
            ended = session.execute(
                select(
                    EventRow.id, EventRow.site, EventRow.camera_id, EventRow.ended_at,
                    EventRow.clip_size, EventRow.snapshot_size,
                )
                .where(EventRow.state == "ended", EventRow.ended_at.is_not(None))
                .order_by(EventRow.started_at.desc())
            ).all()  # fmt: skip
        due = []
        kept_bytes: dict[str, int] = {}
        for event_id, site, camera_id, ended_at, clip_size, snapshot_size in ended:
            policy = self.config.policy(site, camera_id)  # newest first: the budget keeps them
            kept = kept_bytes.get(camera_id, 0) + (clip_size or 0) + (snapshot_size or 0)
            too_old = (
                policy.event_days is not None
                and ended_at is not None
                and (ended_at < now - timedelta(days=policy.event_days))
            )
            too_much = policy.event_max_bytes is not None and kept > policy.event_max_bytes
            if too_old or too_much:
                due.append(event_id)
            else:
                kept_bytes[camera_id] = kept
        for event_id in due:
            try:
                self._sweep_event(event_id, result)
            except Exception:  # one object's trouble must not stop the sweep
                log.exception("retention: event %s not swept", event_id)

    def _sweep_event(self, event_id: str, result: SweepResult) -> None:
        # Asked per event, just before deleting: a hold placed during a sweep counts.
        if self.evidence.held([event_id]):
            result.held.append(event_id)
            return
        row = self.index.get_event(event_id)
        if row is None or not self._delete([row.clip_key, row.snapshot_key], result):
            return
        with self.index.sessions.begin() as session:
            session.execute(delete(EventRow).where(EventRow.id == event_id))
        self.evidence.record(event_id, "delete", "retention", detail="retention expired")
        result.events.append(event_id)

    def _sweep_recordings(self, now: datetime, result: SweepResult) -> None:
        with self.index.sessions() as session:
            rows = list(session.scalars(select(RecordingRow).order_by(RecordingRow.start.desc())))
        kept_bytes: dict[str, int] = {}
        for row in rows:  # newest first: the byte budget keeps the newest
            policy = self.config.policy(row.site, row.camera_id)
            kept = kept_bytes.get(row.camera_id, 0) + row.size
            too_old = policy.recording_days is not None and row.end < now - timedelta(
                days=policy.recording_days
            )
            too_much = policy.recording_max_bytes is not None and kept > policy.recording_max_bytes
            if not (too_old or too_much):
                kept_bytes[row.camera_id] = kept
                continue
            try:
                if self._delete([row.key], result):
                    with self.index.sessions.begin() as session:
                        session.execute(delete(RecordingRow).where(RecordingRow.id == row.id))
                    result.recordings.append(row.key)
            except Exception:  # one object's trouble must not stop the sweep
                log.exception("retention: recording %s not swept", row.key)

    def _delete(self, keys: Sequence[str | None], result: SweepResult) -> bool:
        """Delete the objects, every version of them on a versioned bucket (object lock makes
        one; there a plain delete only hides the object behind a delete marker); False, and
        nothing more deleted, if the server still retains one."""
        present = [key for key in keys if key is not None]
        versions: list[tuple[str, str | None]] = [(key, None) for key in present]
        if self._versioned:
            versions = [(key, version) for key in present for version in self.store.versions(key)]
        retained = [
            key for key, version in versions if self._locked and self._retained(key, version)
        ]
        if retained:
            log.info("retention: %s still retained by the server", ", ".join(retained))
            result.locked += retained
            return False
        for key, version in versions:
            try:
                self.store.client.remove_object(self.store.bucket, key, version_id=version)
            except S3Error as error:
                if error.code == "NoSuchKey":
                    continue
                log.warning("retention: %s not deleted: %s", key, error.code)
                result.locked.append(key)
                return False
        return True

    def _retained(self, key: str, version: str | None) -> bool:
        """An object lock retention not yet expired, or a legal hold, on this version."""
        if version is None:
            return False
        retention = self.store.retention(key, version)
        until = retention.retain_until_date if retention is not None else None
        return (until is not None and until > utcnow()) or self.store.legal_hold(key, version)
