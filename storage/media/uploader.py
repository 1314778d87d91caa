"""The uploader: moves spool entries to S3, verifies each, then lets it go."""

from __future__ import annotations

import io
import logging
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import BinaryIO

from common.backoff import Backoff
from storage.media.objects import ObjectStore, StoredObject
from storage.media.spool import CheckedEntry, Kind, Spool, SpoolCorruptError, SpoolEntry

log = logging.getLogger(__name__)

OnUploaded = Callable[[SpoolEntry, StoredObject], None]
IDLE_WAIT_S = 1.0  # a wake-up lost between a check and the wait costs at most this


class UploadMismatchError(Exception):
    """The server holds something other than what was sent (size, SHA-256 or ETag)."""


@dataclass
class UploaderStats:
    uploaded: int = 0
    bytes: int = 0
    failures: int = 0


class Uploader:
    """One thread per worker that uploads the spool, oldest entry first.

    Each entry's bytes are checked against its manifest's SHA-256 (a mismatch is quarantined,
    never uploaded) in a pass that also computes the MD5s of S3's ETag, then sent with the
    SHA-256 in the object's metadata (one PUT up to the spool's part size, multipart beyond).
    The server's ETag must equal those MD5s' (the object is the checked bytes); the first
    upload, and every upload when ETags are not compared, is also read back with a HEAD
    (size, SHA-256 metadata). So the bytes are read once more than a bare `put_object`,
    instead of a full re-read of every object, and that pass is made for the next entry on
    a second thread while the current one is sent. Only then is `on_uploaded[kind]` called
    and the entry removed (its file unlinked on that second thread). A failure retries with
    capped exponential backoff and jitter; any success makes every waiting entry due again
    (the server is back). An upload repeated after a crash writes the same key with the
    same bytes: nothing is duplicated.

    Example:
        >>> uploader = Uploader(spool, store, {"clip": recorder.uploaded})  # doctest: +SKIP
        >>> uploader.start(); ...; uploader.stop(drain_s=10)  # doctest: +SKIP
    """

    def __init__(
        self,
        spool: Spool,
        store: ObjectStore,
        on_uploaded: Mapping[Kind, OnUploaded] | None = None,
        backoff: Backoff | None = None,
    ) -> None:
        self.spool = spool
        self.store = store
        self.on_uploaded = dict(on_uploaded or {})
        self.backoff = backoff or Backoff(0.5, 30.0)
        self.stats = UploaderStats()
        self._attempts: dict[str, int] = {}
        self._due: dict[str, float] = {}
        self._verified: dict[str, StoredObject] = {}  # uploads whose callback still failed
        self._bucket_ready = False
        self._keeps_metadata = False  # seen in a HEAD after an upload
        self._stopping = False
        self._deadline = 0.0
        self._thread = threading.Thread(target=self._run, name="uploader", daemon=True)
        # Checks the next entry and unlinks uploaded files while the uploader thread sends.
        self._helper = ThreadPoolExecutor(1, thread_name_prefix="uploader-helper")

    def start(self) -> None:
        self._thread.start()

    def stop(self, drain_s: float) -> int:
        """Keep uploading for at most `drain_s`, then stop; returns how many entries are left
        in the spool for the next start."""
        self._deadline = time.monotonic() + drain_s
        self._stopping = True
        self.spool.wake()
        if self._thread.is_alive():
            # An upload under way when the time is up is given the HTTP timeouts to finish.
            self._thread.join(drain_s + 35.0)
        left = len(self.spool)
        if left:
            log.warning("%d spool entries left for the next start", left)
        return left

    def _run(self) -> None:
        with self._helper:
            ahead: dict[str, Future[CheckedEntry]] = {}  # at most the next entry, checked
            while True:
                now = time.monotonic()
                entries = self.spool.entries()
                if self._stopping and (not entries or now >= self._deadline):
                    return
                due = [e for e in entries if self._due.get(e.id, 0.0) <= now]
                if not due:
                    ahead.clear()
                    wake = min((self._due.get(e.id, now) for e in entries), default=now + 1.0)
                    if self._stopping:
                        wake = min(wake, self._deadline)
                    self.spool.wait(max(0.01, min(wake - now, IDLE_WAIT_S)))
                    continue
                current = ahead.pop(due[0].id, None)
                ahead.clear()
                if len(due) > 1 and due[1].size <= due[1].part_size:
                    ahead[due[1].id] = self._helper.submit(self.spool.check, due[1])
                self._attempt(due[0], current)

    def _attempt(self, entry: SpoolEntry, checked: Future[CheckedEntry] | None = None) -> None:
        try:
            # Uploaded and verified before, only its indexing failed: not sent again (on a
            # WORM bucket every PUT is one more version the server must keep).
            stored = self._verified.get(entry.id) or self.upload(entry, checked)
            self._verified[entry.id] = stored
            callback = self.on_uploaded.get(entry.kind)
            if callback is not None:
                callback(entry, stored)
        except SpoolCorruptError as exc:
            self.spool.quarantine(entry, str(exc))
            return
        except Exception as exc:
            attempt = self._attempts.get(entry.id, 0)
            self._attempts[entry.id] = attempt + 1
            delay = self.backoff.delay(attempt)
            self._due[entry.id] = time.monotonic() + delay
            self.stats.failures += 1
            log.warning(
                "upload of %s failed (%s: %s); retry %d in %.1fs",
                entry.key,
                type(exc).__name__,
                str(exc)[:200],
                attempt + 1,
                delay,
            )
            return
        self._helper.submit(self.spool.remove(entry).unlink, missing_ok=True)
        self._verified.pop(entry.id, None)
        self.stats.uploaded += 1
        self.stats.bytes += entry.size
        # The server took this one: whatever failed before may well go through now.
        self._attempts.clear()
        self._due.clear()

    def upload(
        self, entry: SpoolEntry, checked: Future[CheckedEntry] | None = None
    ) -> StoredObject:
        """Upload one entry and verify it; SpoolCorruptError if its file no longer matches.
        `checked`: the entry, already being checked on another thread."""
        if not self._bucket_ready:
            self.store.ensure_bucket()
            self._bucket_ready = True
        ready = checked.result() if checked else self.spool.check(entry)
        if ready.data is not None:
            # Small (every clip and snapshot): the checked bytes in memory are what is sent.
            etag = self._put(entry, io.BytesIO(ready.data))
        else:
            with open(entry.path, "rb") as stream:
                etag = self._put(entry, stream)
        if ready.etag:
            # The server's MD5 of the bytes it stored, against the MD5 of the bytes that
            # matched the manifest's SHA-256: equal, the object is those bytes.
            if etag != ready.etag:
                raise UploadMismatchError(f"{entry.key}: etag {etag} != {ready.etag}")
            if self._keeps_metadata:
                return StoredObject(entry.key, entry.size, entry.sha256, etag, entry.content_type)
        # No ETag to compare (verify_etag off), or the first upload: a HEAD shows the object,
        # and that the server keeps the SHA-256 metadata evidence checks read later.
        stored = self.store.stat(entry.key)
        problems = []
        if stored is None:
            raise UploadMismatchError(f"{entry.key} is not on the server after its upload")
        if stored.size != entry.size:
            problems.append(f"size {stored.size} != {entry.size}")
        if stored.sha256 != entry.sha256:
            problems.append("sha256 metadata differs")
        if problems:
            raise UploadMismatchError(f"{entry.key}: " + "; ".join(problems))
        self._keeps_metadata = True
        return stored

    def _put(self, entry: SpoolEntry, stream: BinaryIO) -> str:
        return self.store.put_stream(
            entry.key,
            stream,
            entry.size,
            entry.content_type,
            entry.metadata,
            entry.sha256,
            entry.tags,
            entry.part_size,
            evidence=entry.kind in ("clip", "snapshot"),
        )
