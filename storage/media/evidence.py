"""Evidence integrity: stored objects checked against the hashes recorded when they were
made, legal holds that keep an event's media from deletion, and the chain-of-custody log of
who did what with it and when."""

from __future__ import annotations

import hashlib
import io
import json
import logging
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from minio.error import S3Error
from sqlalchemy import select
from sqlalchemy.orm import Session

from storage.database import custody_chain
from storage.database.custody import CustodyLog, CustodyRow, IntegrityCheckRow, LegalHoldRow
from storage.database.engine import utcnow
from storage.database.index import EventIndex, EventRow
from storage.media.objects import NO_LOCK_CODES, ObjectStore

log = logging.getLogger(__name__)
CHUNK = 1024 * 1024
ANCHORS = "custody-anchors/"  # the custody log's head, now and then, under object lock
BUNDLE_FORMAT = "xueliang-evidence-bundle/1"
VERIFY_SCRIPT = Path(custody_chain.__file__)


class EvidenceError(Exception):
    """An evidence operation that cannot be done as asked (the message says why)."""


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
        self.log = CustodyLog(index)
        self._locked: bool | None = None
        self._anchors: dict[str, tuple[int, str]] = {}  # key -> (seq, sha256), as read

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

    def custody(self, event_id: str) -> list[CustodyRow]:
        """The custody log of an event, oldest first."""
        return self.log.of_event(event_id)

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
        for result in results:
            detail = "ok" if result.ok else result.problem
            self.log.append(event_id, "verify", actor, result.key, detail=detail)
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
        self.log.append(event_id, "hold", actor, detail=reason)

    def release(self, event_id: str, actor: str) -> None:
        with self.index.sessions.begin() as session:
            hold = self._active_hold(session, event_id)
            if hold is None:
                return
            hold.released_by, hold.released_at = actor, utcnow()
        row = self.index.get_event(event_id)
        if row is not None:
            self._s3_hold(row, on=False)
        self.log.append(event_id, "release", actor)

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

    def anchor(self) -> int | None:
        """Write the custody log's head to object storage (retained by the server where the
        store is WORM), unless it is anchored already: entries up to an anchor cannot be
        rewritten, cut off or replaced by a rebuilt chain unseen. Returns the seq anchored."""
        seq, sha256 = self.log.head()
        key = f"{ANCHORS}{seq:012d}.json"
        if seq == 0 or self.store.stat(key) is not None:
            return None
        body = json.dumps({"seq": seq, "sha256": sha256, "at": utcnow().isoformat()}).encode()
        digest = hashlib.sha256(body).hexdigest()
        self.store.put_stream(
            key, io.BytesIO(body), len(body), "application/json", {}, digest, evidence=True
        )
        return seq

    def anchors(self) -> dict[int, str]:
        """seq -> sha256 of every anchor in object storage. Each is read once per process:
        one is written every round the log grew, and under object lock none changes."""
        for key in self.store.keys(ANCHORS):
            if key not in self._anchors:
                anchor = json.loads(self.store.read(key))
                self._anchors[key] = (int(anchor["seq"]), str(anchor["sha256"]))
        return dict(self._anchors.values())

    def check_log(self) -> tuple[list[str], int]:
        """Everything wrong with the whole custody log, its anchors included (each logged),
        and how many anchors there are."""
        anchors = self.anchors()
        problems = self.log.problems(anchors)
        for problem in problems:
            log.error("the custody log is not intact: %s", problem)
        return problems, len(anchors)

    def write_bundle(self, event_id: str, actor: str, client: str | None, target: Path) -> None:
        """An evidence bundle of the event as a ZIP at `target`: its clip and snapshot, a
        manifest with their SHA-256 and the event's custody entries (this export the last of
        them), and `verify.py`, which checks all that offline. EvidenceError if a medium does
        not match the hash recorded when it was stored."""
        row = self.index.get_event(event_id)
        if row is None:
            raise KeyError(event_id)
        media = [
            (name, key, sha256)
            for name, key, sha256 in (
                ("clip.mp4", row.clip_key, row.clip_sha256),
                ("snapshot.jpg", row.snapshot_key, row.snapshot_sha256),
            )
            if key is not None and sha256 is not None
        ]
        self.log.append(event_id, "export", actor, client=client, detail="evidence bundle")
        files = []
        with zipfile.ZipFile(target, "w") as bundle:  # media stored as they are, text deflated
            for name, key, recorded in media:
                digest, size = hashlib.sha256(), 0
                with bundle.open(name, "w", force_zip64=True) as member:
                    for chunk in self.store.open(key, CHUNK):
                        digest.update(chunk)
                        size += len(chunk)
                        member.write(chunk)
                if digest.hexdigest() != recorded:
                    raise EvidenceError(f"the stored {name} does not match its recorded SHA-256")
                files.append({"name": name, "object_key": key, "sha256": recorded, "size": size})
            seq, head = self.log.head()
            manifest = {
                "format": BUNDLE_FORMAT,
                "event": {
                    "id": row.id,
                    "site": row.site,
                    "camera_id": row.camera_id,
                    "type": row.type,
                    "started_at": row.started_at.isoformat(),
                    "ended_at": row.ended_at.isoformat() if row.ended_at else None,
                },
                "files": files,
                "custody": [entry.entry() for entry in self.custody(event_id)],
                "custody_head": {"seq": seq, "sha256": head},
                "exported_by": actor,
                "exported_at": utcnow().isoformat(),
            }
            texts = {
                "manifest.json": json.dumps(manifest, indent=2, ensure_ascii=False),
                "verify.py": VERIFY_SCRIPT.read_text(),
                "README.txt": BUNDLE_README,
            }
            for name, text in texts.items():
                bundle.writestr(name, text, compress_type=zipfile.ZIP_DEFLATED)


BUNDLE_README = """\
An evidence bundle of one event, exported from Xueliang.

  manifest.json  the event, the SHA-256 and size of each file as recorded when it was stored,
                 and the event's chain-of-custody entries (each with its hash and the hashes
                 of the entries before it)
  clip.mp4       the event's clip (when it has one)
  snapshot.jpg   its snapshot (when it has one)
  verify.py      checks the files and the custody entries, with Python 3.9 or later only:

      python3 verify.py .

"""
