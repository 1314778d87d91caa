"""Evidence integrity: stored objects checked against the hashes recorded when they were
made, legal holds that keep an event's media from deletion, and the chain-of-custody log of
who did what with it and when."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

from minio.error import S3Error
from sqlalchemy import select
from sqlalchemy.orm import Session

from storage.database.custody import CustodyRow, IntegrityCheckRow, LegalHoldRow
from storage.database.engine import utcnow
from storage.database.index import EventIndex, EventRow
from storage.media.objects import NO_LOCK_CODES, ObjectStore

log = logging.getLogger(__name__)
CHUNK = 1024 * 1024


@dataclass(frozen=True, slots=True)
class Verification:
    """One object re-read: `ok` when its bytes hash to the SHA-256 recorded in the index
    and in its own metadata."""

    key: str
    ok: bool
    expected: str
    actual: str | None
    problem: str = ""


def verify_object(store: ObjectStore, key: str, expected: str) -> Verification:
    """Re-read `key` and compare its SHA-256 with `expected` and with its metadata's.

    Example:
        >>> verify_object(store, "hq/gate/2026/01/01/e1.mp4", row.clip_sha256)  # doctest: +SKIP
        Verification(key='hq/gate/2026/01/01/e1.mp4', ok=True, ...)
    """
    try:
        stored = store.stat(key)
        chunks = store.open(key, CHUNK) if stored is not None else None
    except S3Error as error:
        return Verification(key, False, expected, None, f"cannot be read: {error.code}")
    if stored is None or chunks is None:
        return Verification(key, False, expected, None, "cannot be read: NoSuchKey")
    digest = hashlib.sha256()
    for chunk in chunks:
        digest.update(chunk)
    actual = digest.hexdigest()
    if actual != expected:
        return Verification(key, False, expected, actual, "content does not match the index")
    if stored.sha256 != expected:
        return Verification(key, False, expected, actual, "metadata hash does not match")
    return Verification(key, True, expected, actual)


class Evidence:
    """Integrity checks, legal holds and the custody log of one deployment's events.

    Every operation on an event's media names its `actor` (an API key's name, "audit" for
    the periodic check) and is written to the custody log.

    Example:
        >>> evidence = Evidence(index, store)  # doctest: +SKIP
        >>> [v.ok for v in evidence.verify_event(event_id, actor="operator-7")]  # doctest: +SKIP
        [True, True]
    """

    def __init__(self, index: EventIndex, store: ObjectStore) -> None:
        self.index = index
        self.store = store
        self._locked: bool | None = None

    def bucket_locked(self) -> bool:
        """Whether the bucket was made with object lock (asked once)."""
        if self._locked is None:
            try:
                self.store.client.get_object_lock_config(self.store.bucket)
                self._locked = True
            except S3Error as exc:
                if exc.code not in NO_LOCK_CODES:
                    raise  # e.g. access denied: no guess either way
                self._locked = False
        return self._locked

    def record(
        self,
        event_id: str,
        action: str,
        actor: str,
        object_key: str | None = None,
        client: str | None = None,
        detail: str = "",
    ) -> None:
        """Append to the custody log."""
        with self.index.sessions.begin() as session:
            session.add(
                CustodyRow(
                    event_id=event_id,
                    object_key=object_key,
                    action=action,
                    actor=actor,
                    client=client,
                    detail=detail[:256],
                )
            )

    def custody(self, event_id: str) -> list[CustodyRow]:
        """The custody log of an event, oldest first."""
        with self.index.sessions() as session:
            statement = select(CustodyRow).where(CustodyRow.event_id == event_id)
            return list(session.scalars(statement.order_by(CustodyRow.at, CustodyRow.id)))

    def verify_event(self, event_id: str, actor: str) -> list[Verification]:
        """Re-read and re-hash an event's clip and snapshot; each result is recorded."""
        row = self.index.get_event(event_id)
        if row is None:
            raise KeyError(event_id)
        stored = [
            (key, sha)
            for key, sha in (
                (row.clip_key, row.clip_sha256),
                (row.snapshot_key, row.snapshot_sha256),
            )
            if key is not None and sha is not None
        ]
        results = [verify_object(self.store, key, sha) for key, sha in stored]
        with self.index.sessions.begin() as session:
            for result in results:
                session.add(
                    IntegrityCheckRow(
                        event_id=event_id,
                        object_key=result.key,
                        ok=result.ok,
                        expected_sha256=result.expected,
                        actual_sha256=result.actual,
                        problem=result.problem,
                    )
                )
                session.add(
                    CustodyRow(
                        event_id=event_id,
                        object_key=result.key,
                        action="verify",
                        actor=actor,
                        detail="ok" if result.ok else result.problem,
                    )
                )
        for result in results:
            if not result.ok:
                log.error(
                    "evidence of event %s failed verification: %s: %s",
                    event_id,
                    result.key,
                    result.problem,
                )
        return results

    def hold(self, event_id: str, actor: str, reason: str) -> None:
        """Place a legal hold on an event: the retention sweeper keeps its media, and on a
        bucket with object lock the server refuses to delete them too."""
        row = self.index.get_event(event_id)
        if row is None:
            raise KeyError(event_id)
        with self.index.sessions.begin() as session:
            if self._active_hold(session, event_id) is None:
                session.add(LegalHoldRow(event_id=event_id, reason=reason[:256], placed_by=actor))
        self._s3_hold(row, on=True)
        self.record(event_id, "hold", actor, detail=reason)

    def release(self, event_id: str, actor: str) -> None:
        with self.index.sessions.begin() as session:
            hold = self._active_hold(session, event_id)
            if hold is None:
                return
            hold.released_by, hold.released_at = actor, utcnow()
        row = self.index.get_event(event_id)
        if row is not None:
            self._s3_hold(row, on=False)
        self.record(event_id, "release", actor)

    def held(self, event_ids: Sequence[str]) -> set[str]:
        """Which of `event_ids` are under a legal hold now."""
        with self.index.sessions() as session:
            statement = select(LegalHoldRow.event_id).where(
                LegalHoldRow.event_id.in_(event_ids), LegalHoldRow.released_at.is_(None)
            )
            return set(session.scalars(statement))

    @staticmethod
    def _active_hold(session: Session, event_id: str) -> LegalHoldRow | None:
        statement = select(LegalHoldRow).where(
            LegalHoldRow.event_id == event_id, LegalHoldRow.released_at.is_(None)
        )
        return session.scalars(statement).first()

    def _s3_hold(self, row: EventRow, on: bool) -> None:
        """The server's own legal hold on an event's media, where the bucket has object
        lock (WORM)."""
        if not self.bucket_locked():
            return
        client, bucket = self.store.client, self.store.bucket
        for key in (k for k in (row.clip_key, row.snapshot_key) if k is not None):
            for version in self.store.versions(key):
                if on:  # every version: an upload repeated after a crash made another
                    client.enable_object_legal_hold(bucket, key, version_id=version)
                else:
                    client.disable_object_legal_hold(bucket, key, version_id=version)

    def reconcile_holds(self) -> int:
        """Set the server's legal hold on every version of every held event's media: media
        uploaded after their hold was placed (they were still in the spool) get it too.
        Returns how many events were gone through."""
        if not self.bucket_locked():
            return 0
        with self.index.sessions() as session:
            active = select(LegalHoldRow.event_id).where(LegalHoldRow.released_at.is_(None))
            held = list(session.scalars(select(EventRow).where(EventRow.id.in_(active))))
        for row in held:
            self._s3_hold(row, on=True)
        return len(held)

    def audit(self, older_than: timedelta, batch: int = 100) -> list[Verification]:
        """Verify up to `batch` ended events whose media were last checked longer ago than
        `older_than` (or never), oldest first: the periodic audit."""
        since = utcnow() - older_than
        with self.index.sessions() as session:
            recent = select(IntegrityCheckRow.event_id).where(IntegrityCheckRow.checked_at > since)
            statement = (
                select(EventRow.id)
                .where(EventRow.clip_key.is_not(None), EventRow.id.not_in(recent))
                .order_by(EventRow.seq)
                .limit(batch)
            )
            due = list(session.scalars(statement))
        return [result for event_id in due for result in self.verify_event(event_id, "audit")]
