"""The local spool: every object bound for S3 is made durable on disk first, with a manifest
entry, and stays there until its upload is verified."""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import secrets
import shutil
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

from storage.config import SpoolConfig
from storage.media.objects import expected_etag

log = logging.getLogger(__name__)

Kind = Literal["clip", "snapshot", "recording"]
KINDS: tuple[Kind, ...] = ("clip", "snapshot", "recording")
CHUNK = 1024 * 1024
MANIFEST = ".manifest.json"
LOCK = "lock"
TMP = ".tmp"


@dataclass(frozen=True, slots=True)
class SpoolEntry:
    """One spooled object: its bytes at `path`, what it becomes in S3, and its SHA-256
    (computed when it was spooled); it goes up in one PUT up to `part_size`, in parts beyond."""

    id: str
    key: str
    kind: Kind
    content_type: str
    size: int
    sha256: str
    part_size: int
    added_at: float
    metadata: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    path: Path = Path()

    def manifest(self) -> dict[str, Any]:
        data = asdict(self)
        data["path"] = self.path.name
        return data


SPOOL_ENTRY_FIELDS = frozenset(f.name for f in fields(SpoolEntry))


@dataclass(frozen=True, slots=True)
class SpoolReport:
    """Something an operator should hear of: a spool file `quarantined` (its bytes no longer
    match its manifest), `storage_full` (the spool is at its limit; `refused` says whether the
    object was turned away), or a recording segment `evicted` to make room."""

    what: Literal["quarantined", "storage_full", "evicted"]
    key: str
    kind: Kind
    metadata: Mapping[str, str]
    detail: str
    refused: bool = False


@dataclass
class SpoolStats:
    entries: int = 0
    bytes: int = 0
    added: int = 0
    removed: int = 0
    quarantined: int = 0
    evicted: int = 0
    refused: int = 0
    full: int = 0


class SpoolFullError(Exception):
    """The spool cannot take this object (see SpoolConfig for the policy)."""


class SpoolCorruptError(Exception):
    """A spool file whose bytes no longer match its manifest."""


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_atomically(path: Path, data: bytes) -> None:
    """Write `path` so that after a crash it is either absent or whole: a temp file, fsync,
    rename, and fsync of the directory (the rename itself must survive a power cut)."""
    tmp = path.with_name(f"{path.name}.{secrets.token_hex(4)}{TMP}")
    with open(tmp, "wb") as out:
        out.write(data)
        out.flush()
        os.fsync(out.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


class Digests:
    """SHA-256 and the MD5 of each upload part (the ETag S3 will give the object) of a
    stream, in one pass; no MD5 at all when `with_md5` is off.

    Example:
        >>> digests = Digests(part_size=4)
        >>> digests.update(b"abcdef")
        >>> digests.etag() == expected_etag(
        ...     [hashlib.md5(b"abcd").digest(), hashlib.md5(b"ef").digest()], "")
        True
    """

    def __init__(self, part_size: int, with_md5: bool = True) -> None:
        self.part_size = part_size
        self.with_md5 = with_md5
        self.size = 0
        self.sha256 = hashlib.sha256()
        self.parts: list[bytes] = []
        self._part = hashlib.md5()
        self._in_part = 0

    def update(self, chunk: bytes) -> None:
        self.size += len(chunk)
        self.sha256.update(chunk)
        if not self.with_md5:
            return
        view = memoryview(chunk)
        while view:
            take = min(len(view), self.part_size - self._in_part)
            self._part.update(view[:take])
            self._in_part += take
            view = view[take:]
            if self._in_part == self.part_size:
                self.parts.append(self._part.digest())
                self._part, self._in_part = hashlib.md5(), 0

    def etag(self) -> str:
        """The ETag S3 gives the stream uploaded in parts of `part_size` ("" without MD5)."""
        if not self.with_md5:
            return ""
        parts = self.parts + ([self._part.digest()] if self._in_part or not self.parts else [])
        return expected_etag(parts, parts[0].hex() if len(parts) == 1 else "")


@dataclass(frozen=True, slots=True)
class CheckedEntry:
    """A spool entry's bytes, read and found to match its manifest: `data` in memory when it
    goes up in one PUT (None beyond: it is streamed from its file), and the `etag` S3 will
    give those bytes ("" when ETags are not compared)."""

    entry: SpoolEntry
    data: bytes | None
    etag: str


class Spool:
    """A directory of objects waiting for S3, oldest first, that survives crashes.

    `root` (the data dir's `spool/`) holds one slot per worker process (`slot-N/`, taken by
    an exclusive lock, so two workers never upload the same entry) and `quarantine/`. A slot
    holds each entry's object (`ID.mp4`) beside its manifest (`ID.manifest.json`, written
    atomically): one directory, so one fsync of it makes both renames durable. `open()` takes
    the lowest free slot, moves in the entries of slots no live worker holds, and loads what
    is there: a restarted worker replays its predecessor's spool.

    Example:
        >>> spool = Spool(Path("data/spool"), SpoolConfig())  # doctest: +SKIP
        >>> spool.open()  # doctest: +SKIP
        >>> entry = spool.add(Path("clip.mp4"), "hq/gate/2026/01/01/e1.mp4", "video/mp4",
        ...                   {"site": "hq"}, "clip")  # doctest: +SKIP
        >>> spool.entries()[0] == entry  # doctest: +SKIP
        True
    """

    def __init__(
        self,
        root: Path,
        config: SpoolConfig,
        on_report: Callable[[SpoolReport], None] | None = None,
    ) -> None:
        self.root = root
        self.config = config
        self.on_report = on_report
        self.stats = SpoolStats()
        self.slot: Path | None = None
        self._lock_fd: int | None = None
        self._entries: dict[str, SpoolEntry] = {}
        self._changed = threading.Condition()
        self._poked = False

    # -- opening and replay ---------------------------------------------------------------

    @property
    def quarantine_dir(self) -> Path:
        return self.root / "quarantine"

    def open(self) -> list[SpoolEntry]:
        """Take a slot, adopt orphaned slots, and load the entries to replay (oldest first)."""
        self.root.mkdir(parents=True, exist_ok=True)
        self.quarantine_dir.mkdir(exist_ok=True)
        number = 0
        while self._lock_fd is None:
            slot = self.root / f"slot-{number}"
            fd = self._try_lock(slot)
            if fd is not None:
                self.slot, self._lock_fd = slot, fd
            number += 1
        assert self.slot is not None
        for stale in self.slot.glob(f"*{TMP}"):
            stale.unlink()  # half-written manifests of a crash: their entry never existed
        for other in sorted(self.root.glob("slot-*")):
            if other != self.slot:
                self._adopt(other)
        self._load()
        return self.entries()

    @staticmethod
    def _try_lock(slot: Path) -> int | None:
        slot.mkdir(exist_ok=True)
        fd = os.open(slot / "lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        return fd

    def _adopt(self, other: Path) -> None:
        """Move the entries of a slot no live worker holds into ours. An entry is linked and
        its manifest written here before it is unlinked there: a crash in between leaves it
        in both, uploaded twice to the same key with the same bytes, never lost."""
        fd = self._try_lock(other)
        if fd is None:
            return
        assert self.slot is not None
        try:
            manifests = sorted(other.glob(f"*{MANIFEST}"))
            for manifest in manifests:
                data = json.loads(manifest.read_bytes())
                source = other / data["path"]
                if source.exists():
                    target = self.slot / data["path"]
                    if not target.exists():
                        os.link(source, target)
                    _write_atomically(self.slot / manifest.name, manifest.read_bytes())
                manifest.unlink()
                source.unlink(missing_ok=True)
            if manifests:
                log.info("spool slot %s adopted into %s", other.name, self.slot.name)
        finally:
            os.close(fd)

    def _load(self) -> None:
        assert self.slot is not None
        listed: set[str] = set()
        for manifest in sorted(self.slot.glob(f"*{MANIFEST}")):
            data: Any = None
            try:
                data = json.loads(manifest.read_bytes())
                # Fields it does not know (a manifest of a newer version) are left aside.
                known = {name: data[name] for name in SPOOL_ENTRY_FIELDS if name in data}
                entry = SpoolEntry(**{**known, "path": self.slot / data["path"]})
            except (ValueError, TypeError, KeyError) as exc:
                self._quarantine_unreadable(manifest, data, exc)
                continue
            if not entry.path.exists():
                log.error("spool entry %s (%s) lost its file; dropped", entry.id, entry.key)
                manifest.unlink()
                continue
            listed.add(entry.path.name)
            self._entries[entry.id] = entry
        for orphan in self.slot.iterdir():
            if orphan.name not in listed and orphan.name != LOCK and MANIFEST not in orphan.name:
                # Moved in, but the process died before its manifest was written: the caller
                # never got an entry back, so nothing waits for it.
                log.warning("spool file %s has no manifest; removed", orphan.name)
                orphan.unlink()
        self.stats.entries = len(self._entries)
        self.stats.bytes = sum(e.size for e in self._entries.values())
        if self._entries:
            log.info("spool replays %d entries (%d bytes)", self.stats.entries, self.stats.bytes)

    def _quarantine_unreadable(self, manifest: Path, data: object, error: Exception) -> None:
        """A manifest that cannot be read: it and its file (never its file alone, which the
        orphan sweep would delete) go to quarantine, and it is reported."""
        assert self.slot is not None
        entry_id = manifest.name.removesuffix(MANIFEST)
        for path in [manifest, *self.slot.glob(f"{entry_id}.*")]:
            if path.exists():
                shutil.move(path, self.quarantine_dir / path.name)
        _fsync_dir(self.quarantine_dir)
        self.stats.quarantined += 1
        known = data if isinstance(data, dict) else {}
        key, kind = str(known.get("key", entry_id)), known.get("kind", "clip")
        metadata = known.get("metadata") if isinstance(known.get("metadata"), dict) else {}
        log.error("spool manifest %s is unreadable (%s); quarantined", manifest.name, error)
        self._report("quarantined", key, kind, metadata or {}, f"unreadable manifest: {error}")

    def close(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    # -- adding -----------------------------------------------------------------------------

    def add(
        self,
        source: Path,
        key: str,
        content_type: str,
        metadata: Mapping[str, str],
        kind: Kind,
        tags: Mapping[str, str] | None = None,
    ) -> SpoolEntry:
        """Move `source` into the spool and make it and its manifest durable; raise
        SpoolFullError if the policy refuses it (the file is then left where it was)."""
        assert self.slot is not None, "open() the spool first"
        size = source.stat().st_size
        self._make_room(kind, size, key, metadata)
        entry_id = f"{time.time_ns():020d}-{secrets.token_hex(4)}"
        path = self.slot / f"{entry_id}{source.suffix}"
        shutil.move(source, path)
        # SHA-256 only: the MD5 S3's ETag is compared with comes from the check before upload
        digests = Digests(self.config.part_size, with_md5=False)
        with open(path, "rb") as data:
            while chunk := data.read(CHUNK):
                digests.update(chunk)
            # the data only: the rename is made durable with the manifest's, below
            os.fdatasync(data.fileno())
        entry = SpoolEntry(
            id=entry_id,
            key=key,
            kind=kind,
            content_type=content_type,
            size=digests.size,
            sha256=digests.sha256.hexdigest(),
            part_size=self.config.part_size,
            added_at=time.time(),
            metadata=dict(metadata),
            tags=dict(tags or {}),
            path=path,
        )
        manifest = json.dumps(entry.manifest(), sort_keys=True).encode()
        _write_atomically(self._manifest(entry), manifest)
        with self._changed:
            self._entries[entry.id] = entry
            self.stats.added += 1
            self.stats.entries += 1
            self.stats.bytes += entry.size
            self._poked = True
            self._changed.notify_all()
        return entry

    def _make_room(self, kind: Kind, size: int, key: str, metadata: Mapping[str, str]) -> None:
        """The full policy: recordings yield to evidence; evidence yields only to the disk."""
        with self._changed:
            if self.stats.bytes + size <= self.config.max_bytes:
                return
            if kind == "recording":
                self.stats.refused += 1
                self._report("storage_full", key, kind, metadata, "recording refused", True)
                raise SpoolFullError(f"spool full: recording {key} refused")
            for old in [e for e in self._entries.values() if e.kind == "recording"]:
                if self.stats.bytes + size <= self.config.max_bytes:
                    break
                self._drop(old)
                self.stats.evicted += 1
                log.warning("spool full: recording segment %s evicted", old.key)
                self._report("evicted", old.key, old.kind, old.metadata, "evicted for evidence")
            if self.stats.bytes + size <= self.config.max_bytes:
                return
            free = shutil.disk_usage(self.root).free
            if free - size < self.config.min_free_bytes:
                self.stats.refused += 1
                self._report("storage_full", key, kind, metadata, "disk nearly full", True)
                raise SpoolFullError(f"spool full and {free} bytes free on disk: {key} refused")
            self._report("storage_full", key, kind, metadata, "over the limit, kept", False)

    def _report(
        self,
        what: Literal["quarantined", "storage_full", "evicted"],
        key: str,
        kind: Kind,
        metadata: Mapping[str, str],
        detail: str,
        refused: bool = False,
    ) -> None:
        if what == "storage_full":
            self.stats.full += 1
            log.error("spool full (%d bytes): %s: %s", self.stats.bytes, key, detail)
        if self.on_report is not None:
            try:
                self.on_report(SpoolReport(what, key, kind, dict(metadata), detail, refused))
            except Exception:
                log.exception("spool report %s for %s not delivered", what, key)

    # -- reading and removing ---------------------------------------------------------------

    def entries(self) -> list[SpoolEntry]:
        """Oldest first (entry ids start with the time they were added)."""
        with self._changed:
            return [self._entries[k] for k in sorted(self._entries)]

    def __len__(self) -> int:
        with self._changed:
            return len(self._entries)

    def wait(self, timeout: float | None) -> None:
        """Block until an entry is added, `wake()` is called, or `timeout` passes; returns at
        once if that happened since the last `wait` (for the one consumer, the uploader)."""
        with self._changed:
            if not self._poked:
                self._changed.wait(timeout)
            self._poked = False

    def wake(self) -> None:
        with self._changed:
            self._poked = True
            self._changed.notify_all()

    def check(self, entry: SpoolEntry) -> CheckedEntry:
        """Read the entry's file once, hashing it (SHA-256, and the MD5s of S3's ETag when
        `verify_etag` is on); SpoolCorruptError unless it matches the manifest. Its bytes are
        kept in memory when it goes up in one PUT."""
        digests = Digests(entry.part_size, with_md5=self.config.verify_etag)
        small = entry.size <= entry.part_size
        chunks = []
        with open(entry.path, "rb") as stream:
            while chunk := stream.read(CHUNK):
                digests.update(chunk)
                if small:
                    chunks.append(chunk)
        if digests.size != entry.size or digests.sha256.hexdigest() != entry.sha256:
            raise SpoolCorruptError(f"spool file of {entry.key} does not match its manifest")
        return CheckedEntry(entry, b"".join(chunks) if small else None, digests.etag())

    def remove(self, entry: SpoolEntry) -> Path:
        """Forget an uploaded entry. Its manifest goes now; its file is returned for the
        caller to unlink when it has time (freeing a clip's blocks takes a millisecond or
        two): a file without a manifest is swept at the next open, so a crash in between
        leaves nothing behind."""
        with self._changed:
            self._manifest(entry).unlink(missing_ok=True)
            self._forget(entry)
            self.stats.removed += 1
        return entry.path

    def quarantine(self, entry: SpoolEntry, reason: str) -> None:
        """Move an entry that failed its check out of the way, for a human to look at."""
        target = self.quarantine_dir / entry.path.name
        with self._changed:
            if entry.path.exists():
                shutil.move(entry.path, target)
            manifest = self._manifest(entry)
            if manifest.exists():
                shutil.move(manifest, self.quarantine_dir / manifest.name)
            _fsync_dir(self.quarantine_dir)
            self._forget(entry)
            self.stats.quarantined += 1
        log.error("spool entry %s (%s) quarantined: %s", entry.id, entry.key, reason)
        self._report("quarantined", entry.key, entry.kind, entry.metadata, reason)

    def _manifest(self, entry: SpoolEntry) -> Path:
        assert self.slot is not None
        return self.slot / f"{entry.id}{MANIFEST}"

    def _drop(self, entry: SpoolEntry) -> None:
        """Remove an entry's manifest and file (the caller holds the lock)."""
        self._manifest(entry).unlink(missing_ok=True)
        entry.path.unlink(missing_ok=True)
        self._forget(entry)

    def _forget(self, entry: SpoolEntry) -> None:
        """Take an entry off the list and the counts (the caller holds the lock)."""
        if self._entries.pop(entry.id, None) is not None:
            self.stats.entries -= 1
            self.stats.bytes -= entry.size
