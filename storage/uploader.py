"""The uploader: moves spool entries to S3, verifies each, then lets it go."""

from __future__ import annotations

import io
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import BinaryIO

from common.backoff import Backoff
from storage.objects import ObjectStore, StoredObject
from storage.spool import Kind, Spool, SpoolCorruptError, SpoolEntry

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

    Each entry's bytes are checked against its manifest (a mismatch is quarantined, never
    uploaded), sent with its SHA-256 in the object's metadata (one PUT up to the spool's
    part size, multipart beyond), and verified with a HEAD: size, the SHA-256 in the metadata,
    and the ETag against the MD5 (or multipart ETag) computed when it was spooled. So the
    bytes are read once more than a bare `put_object` and the server adds one small request,
    instead of a full re-read of every object. Only then is `on_uploaded[kind]` called and the
    entry removed. A failure retries with capped exponential backoff and jitter; any success
    makes every waiting entry due again (the server is back). An upload repeated after a crash
    writes the same key with the same bytes: nothing is duplicated.

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
        verify_etag: bool = True,
    ) -> None:
        self.spool = spool
        self.store = store
        self.on_uploaded = dict(on_uploaded or {})
        self.backoff = backoff or Backoff(0.5, 30.0)
        self.verify_etag = verify_etag
        self.stats = UploaderStats()
        self._attempts: dict[str, int] = {}
        self._due: dict[str, float] = {}
        self._verified: dict[str, StoredObject] = {}  # uploads whose callback still failed
        self._bucket_ready = False
        self._stopping = False
        self._deadline = 0.0
        self._thread = threading.Thread(target=self._run, name="uploader", daemon=True)

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
        while True:
            now = time.monotonic()
            entries = self.spool.entries()
            if self._stopping and (not entries or now >= self._deadline):
                return
            due = [e for e in entries if self._due.get(e.id, 0.0) <= now]
            if not due:
                wake = min((self._due.get(e.id, now) for e in entries), default=now + 1.0)
                if self._stopping:
                    wake = min(wake, self._deadline)
                self.spool.wait(max(0.01, min(wake - now, IDLE_WAIT_S)))
                continue
            self._attempt(due[0])

    def _attempt(self, entry: SpoolEntry) -> None:
        try:
            # Uploaded and verified before, only its indexing failed: not sent again (on a
            # WORM bucket every PUT is one more version the server must keep).
            stored = self._verified.get(entry.id) or self.upload(entry)
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
                entry.key, type(exc).__name__, str(exc)[:200], attempt + 1, delay,
            )  # fmt: skip
            return
        self.spool.remove(entry)
        self._verified.pop(entry.id, None)
        self.stats.uploaded += 1
        self.stats.bytes += entry.size
        # The server took this one: whatever failed before may well go through now.
        self._attempts.clear()
        self._due.clear()

    def upload(self, entry: SpoolEntry) -> StoredObject:
        """Upload one entry and verify it; SpoolCorruptError if its file no longer matches."""
        if not self._bucket_ready:
            self.store.ensure_bucket()
            self._bucket_ready = True
        if entry.size <= entry.part_size:
            # Small (every clip and snapshot): the checked bytes in memory are what is sent.
            data = self.spool.read_checked(entry)
            etag = self._put(entry, io.BytesIO(data))
        else:
            with self.spool.open_checked(entry) as stream:
                etag = self._put(entry, stream)
        stored = self.store.stat(entry.key)
        problems = []
        if stored is None:
            raise UploadMismatchError(f"{entry.key} is not on the server after its upload")
        if stored.size != entry.size:
            problems.append(f"size {stored.size} != {entry.size}")
        if stored.sha256 != entry.sha256:
            problems.append("sha256 metadata differs")
        if self.verify_etag and entry.etag and stored.etag != entry.etag:
            problems.append(f"etag {stored.etag} != {entry.etag} (put said {etag})")
        if problems:
            raise UploadMismatchError(f"{entry.key}: " + "; ".join(problems))
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
