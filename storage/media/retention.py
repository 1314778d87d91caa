"""Retention: event media and recordings older than their camera's policy (or beyond its
byte budget) are deleted, objects and index rows together; nothing under a legal hold or an
unexpired object-lock retention is ever deleted."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from minio.error import S3Error
from pydantic import Field
from sqlalchemy import ColumnElement, delete, func, select
from sqlalchemy.orm import InstrumentedAttribute

from common.config import StrictModel
from storage.database.camera_health import CameraHealthRow
from storage.database.engine import utcnow
from storage.database.index import EventFeedRow, EventIndex, EventRow
from storage.database.recordings import RecordingRow
from storage.database.webhooks import WebhookAttemptRow, WebhookOutboxRow
from storage.media.evidence import Evidence
from storage.media.objects import ObjectStore

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
    sweep_batch: int = Field(
        10_000, gt=0, description="most events and most segments deleted per camera per sweep"
    )
    feed_days: float = Field(7.0, gt=0, description="the event feed (live, webhooks, MQTT)")
    deliveries_days: float = Field(30.0, gt=0, description="webhook deliveries made or dead")
    health_days: float = Field(7.0, gt=0, description="cameras' per-minute health history")

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
    `recording_max_bytes`. Cameras are gone through one at a time, each at most
    `sweep_batch` rows a sweep, so a year of 24/7 recording is never loaded at once.
    Objects are deleted first and the row only once they are gone, so an index row never
    points at nothing for long and an object is never left without its row; a refused
    deletion (object lock) keeps both.

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
        self._trim_logs(now)
        if result.events or result.recordings:
            log.info(
                "retention: %d events and %d recording segments deleted",
                len(result.events),
                len(result.recordings),
            )
        return result

    def _sweep_events(self, now: datetime, result: SweepResult) -> None:
        ended = (EventRow.state == "ended", EventRow.ended_at.is_not(None))
        for site, camera_id in self._cameras(EventRow.site, EventRow.camera_id):
            policy = self.config.policy(site, camera_id)
            due = self._due(
                (EventRow.camera_id == camera_id, *ended),
                EventRow.id,
                EventRow.started_at,
                EventRow.ended_at,
                func.coalesce(EventRow.clip_size, 0) + func.coalesce(EventRow.snapshot_size, 0),
                policy.event_days,
                policy.event_max_bytes,
                now,
            )
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
        self.evidence.log.append(event_id, "delete", "retention", detail="retention expired")
        result.events.append(event_id)

    def _sweep_recordings(self, now: datetime, result: SweepResult) -> None:
        for site, camera_id in self._cameras(RecordingRow.site, RecordingRow.camera_id):
            policy = self.config.policy(site, camera_id)
            due = self._due(
                (RecordingRow.camera_id == camera_id,),
                RecordingRow.id,
                RecordingRow.start,
                RecordingRow.end,
                RecordingRow.size,
                policy.recording_days,
                policy.recording_max_bytes,
                now,
            )
            with self.index.sessions() as session:
                rows = session.execute(
                    select(RecordingRow.id, RecordingRow.key).where(RecordingRow.id.in_(due))
                ).all()
            for row_id, key in rows:
                try:
                    if self._delete([key], result):
                        with self.index.sessions.begin() as session:
                            session.execute(delete(RecordingRow).where(RecordingRow.id == row_id))
                        result.recordings.append(key)
                except Exception:  # one object's trouble must not stop the sweep
                    log.exception("retention: recording %s not swept", key)

    def _trim_logs(self, now: datetime) -> None:
        """The feed's old entries, webhook deliveries long settled with their attempts, and
        cameras' old minutes of health history (removed cameras' too)."""
        feed_before = now - timedelta(days=self.config.feed_days)
        health_before = now - timedelta(days=self.config.health_days)
        settled_before = now - timedelta(days=self.config.deliveries_days)
        settled = select(WebhookOutboxRow.id).where(
            WebhookOutboxRow.state.in_(("delivered", "dead")),
            WebhookOutboxRow.created_at < settled_before,
        )
        with self.index.sessions.begin() as session:
            session.execute(delete(EventFeedRow).where(EventFeedRow.at < feed_before))
            session.execute(
                delete(WebhookAttemptRow).where(WebhookAttemptRow.delivery_id.in_(settled))
            )
            session.execute(delete(WebhookOutboxRow).where(WebhookOutboxRow.id.in_(settled)))
            session.execute(delete(CameraHealthRow).where(CameraHealthRow.minute < health_before))

    def _cameras(
        self, site: InstrumentedAttribute[str], camera_id: InstrumentedAttribute[str]
    ) -> list[tuple[str, str]]:
        with self.index.sessions() as session:
            return [(s, c) for s, c in session.execute(select(site, camera_id).distinct())]

    def _due(
        self,
        where: tuple[ColumnElement[bool], ...],
        row_id: InstrumentedAttribute[Any],
        start: InstrumentedAttribute[datetime],
        end: InstrumentedAttribute[datetime] | InstrumentedAttribute[datetime | None],
        size: ColumnElement[int] | InstrumentedAttribute[int],
        days: float | None,
        max_bytes: int | None,
        now: datetime,
    ) -> list[Any]:
        """One camera's rows its policy no longer keeps, at most `sweep_batch` (the rest go
        next sweep): by age alone, an index range on (camera, start) read oldest first (what
        ended before the cutoff started before it too); with a byte budget, its rows newest
        first, streamed, keeping the newest that fit."""
        cutoff = now - timedelta(days=days) if days is not None else None
        limit = self.config.sweep_batch
        with self.index.sessions() as session:
            if max_bytes is None:
                if cutoff is None:
                    return []
                expired = select(row_id).where(*where, start < cutoff, end < cutoff)
                return list(session.scalars(expired.order_by(start).limit(limit)))
            newest_first = (
                select(row_id, end, size)
                .where(*where)
                .order_by(start.desc())
                .execution_options(yield_per=1000)
            )
            due: list[Any] = []
            kept = 0
            for key, ended_at, row_size in session.execute(newest_first):
                too_old = cutoff is not None and ended_at < cutoff
                if too_old or kept + row_size > max_bytes:
                    due.append(key)
                    if len(due) == limit:
                        break
                else:
                    kept += row_size
            return due

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
