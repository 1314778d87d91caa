"""Turns analytics events into index rows, and ended events into clips and snapshots that go
to S3 through the spool."""

from __future__ import annotations

import dataclasses
import hashlib
import heapq
import io
import logging
import queue
import tempfile
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from urllib.parse import quote, unquote

from common.types import ClipMask, Event
from ingest.ring import EncodedPacket, PacketRing
from storage.config import ClipConfig
from storage.database.alarms import AlarmPanels
from storage.database.engine import to_datetime
from storage.database.index import EventIndex, event_of_row
from storage.database.recordings import RecordingRow, segments_between
from storage.media.clips import ClipError, mask_to_mp4, remux_to_mp4
from storage.media.continuous import export_range
from storage.media.objects import ObjectStore, StoredObject, object_key
from storage.media.spool import Spool, SpoolEntry

log = logging.getLogger(__name__)


class EventRecorder:
    """The storage stage's `EventSink`.

    A started event is written to the index at once, so the API shows it while it lasts.
    An ended event waits for its post-roll, then its clip (pre-roll + event + post-roll) is
    cut from the camera's packet ring without re-encoding and put in the spool with its
    snapshot; a camera whose `privacy` is enabled gets its clip re-encoded with the faces
    blurred instead. The event is then `ended` with no clip key yet: `uploaded`, the
    uploader's callback, writes the keys and hashes once each upload is verified.

    Example:
        >>> recorder = EventRecorder(index, spool, rings, ClipConfig(), work)  # doctest: +SKIP
        >>> uploader = Uploader(spool, store, dict.fromkeys(("clip", "snapshot"),
        ...                                                  recorder.uploaded))  # doctest: +SKIP
        >>> recorder.start()  # doctest: +SKIP
    """

    def __init__(
        self,
        index: EventIndex,
        spool: Spool,
        rings: Mapping[str, PacketRing],
        clips: ClipConfig,
        work_dir: Path,
        *,
        clip_masks: Mapping[str, ClipMask] | None = None,
    ) -> None:
        self.index = index
        self.spool = spool
        self.rings = rings
        self.clips = clips
        self.work_dir = work_dir
        # By camera, for the cameras with privacy on; the caller may update it. The masks
        # are used on the recorder's thread alone.
        self.clip_masks = clip_masks if clip_masks is not None else {}
        self._due: list[tuple[float, int, Event]] = []  # ended events, by when their clip is due
        self._counter = 0
        self._wake = threading.Condition()
        self._stopping = False
        # Started events are indexed by a thread of their own: neither analytics nor a long
        # clip (a privacy-masked one takes about as long to encode as it lasts) delays them.
        self._started: queue.SimpleQueue[Event | None] = queue.SimpleQueue()
        self._indexer = threading.Thread(target=self._index, name="recorder-index", daemon=True)
        self._thread = threading.Thread(target=self._run, name="recorder", daemon=True)

    def event_started(self, event: Event) -> None:
        self._started.put(event)

    def event_ended(self, event: Event) -> None:
        assert event.ended_at is not None
        with self._wake:
            self._counter += 1
            due = event.ended_at + self._around(event)[1]
            heapq.heappush(self._due, (due, self._counter, event))
            self._wake.notify()

    def _around(self, event: Event) -> tuple[float, float]:
        """The seconds before and after the event its clip holds."""
        return event.clip_around or (self.clips.pre_roll_s, self.clips.post_roll_s)

    def start(self) -> None:
        self.work_dir.mkdir(parents=True, exist_ok=True)
        self._indexer.start()
        self._thread.start()

    def stop(self) -> None:
        """Index every started event, then finish every pending one now, with whatever
        post-roll the ring already holds."""
        self._started.put(None)
        self._indexer.join()
        with self._wake:
            self._stopping = True
            self._wake.notify()
        self._thread.join()

    def _index(self) -> None:
        while (event := self._started.get()) is not None:
            try:
                self.index.add_event(event)
            except Exception:
                log.exception("could not index event %s of camera %s", event.id, event.camera_id)

    def _run(self) -> None:
        while True:
            with self._wake:
                while not self._stopping and (not self._due or self._due[0][0] > time.time()):
                    timeout = self._due[0][0] - time.time() if self._due else None
                    self._wake.wait(timeout)
                if not self._due:
                    return
                _, _, event = heapq.heappop(self._due)
            try:
                self._finish(event)
            except Exception as exc:
                log.exception("could not store event %s of camera %s", event.id, event.camera_id)
                self._record_failure(event, exc)

    def _record_failure(self, event: Event, error: Exception) -> None:
        assert event.ended_at is not None
        try:
            self.index.end_event(
                event,
                to_datetime(event.ended_at),
                clip_error=f"clip not stored: {type(error).__name__}",
            )
        except Exception:
            log.exception("event %s could not be marked as failed", event.id)

    def _finish(self, event: Event) -> None:
        assert event.ended_at is not None
        clip_error = None
        pre_roll, post_roll = self._around(event)
        clip_start, clip_end = event.started_at - pre_roll, event.ended_at + post_roll
        packets = self.rings[event.camera_id].window(clip_start, clip_end, anchor=event.started_at)
        with tempfile.TemporaryDirectory(dir=self.work_dir) as scratch:
            if event.snapshot is not None:
                path = Path(scratch) / f"{event.id}.jpg"
                path.write_bytes(event.snapshot)
                key = object_key(event.site, event.camera_id, event.started_at, path.name)
                tags = {"event-type": event.type, "kind": "snapshot"}
                self.spool.add(path, key, "image/jpeg", event_metadata(event), "snapshot", tags)
            if packets:
                path = Path(scratch) / f"{event.id}.mp4"
                self._write_clip(event.camera_id, packets, path)
                self._spool_clip(event, path, (packets[0].wall_time, packets[-1].wall_time))
            else:
                clip_error = "no packets of the clip window were still in the ring"
        self.index.end_event(event, to_datetime(event.ended_at), best=True, clip_error=clip_error)
        log.info("event %s ended; its clip and snapshot are spooled", event.id)

    def _spool_clip(
        self, event: Event, path: Path, window: tuple[float, float], origin: str | None = None
    ) -> None:
        """Hand the clip at `path` (its first and last frames' wall times `window`) to the
        spool; `origin` says where it came from if not the ring (EventRow.clip_origin)."""
        key = object_key(event.site, event.camera_id, event.started_at, path.name)
        metadata = {
            **event_metadata(event),
            "clip-start": _iso(window[0]),
            "clip-end": _iso(window[1]),
            **({"clip-origin": origin} if origin else {}),
        }
        tags = {"event-type": event.type, "kind": "clip"}
        self.spool.add(path, key, "video/mp4", metadata, "clip", tags)

    def recover(self, event: Event, journal: Sequence[RecordingRow]) -> bool:
        """Cut the clip of an event whose worker died from that worker's journal files
        (storage/media/journal.py), which end where it died: the event ends there too.
        Returns whether a clip was spooled (none if the journal holds no part of it)."""
        pre_roll, post_roll = self._around(event)
        last_frame = journal[-1].end.timestamp()
        if journal[0].start.timestamp() > event.started_at or last_frame < event.started_at:
            return False  # the journal does not reach back to the event's start
        if self.clip_masks.get(event.camera_id) is not None:
            return False  # a privacy-masked clip is re-encoded from the ring's packets only
        ended = dataclasses.replace(event, ended_at=last_frame, last_seen_at=last_frame)
        with tempfile.TemporaryDirectory(dir=self.work_dir) as scratch:
            path = Path(scratch) / f"{event.id}.mp4"
            start, end = event.started_at - pre_roll, last_frame + post_roll
            try:
                window = export_range(journal, _read_file, start, end, path)
            except ClipError:
                return False
            self._spool_clip(ended, path, window, origin="journal")
        self.index.end_event(ended, to_datetime(last_frame))
        log.info(
            "event %s of camera %s: its clip recovered from the journal", event.id, event.camera_id
        )
        return True

    def cut_alarm_clips(
        self, panels: AlarmPanels, camera_ids: Iterable[str], worker_id: str
    ) -> None:
        """Cut the alarm clips asked of `camera_ids` (the cameras this worker runs) from
        their packet rings as any event's, `pre_s` before the alarm to `post_s` after it."""
        for request in panels.take_clips(camera_ids, worker_id):
            row = self.index.get_event(request.event_id)
            if row is None:
                continue
            at = request.alarm_at.timestamp()
            around = (request.pre_s, request.post_s)
            event = event_of_row(row, started_at=at, ended_at=at, clip_around=around)
            log.info("camera %s: alarm clip of event %s", row.camera_id, row.id)
            self.event_ended(event)

    def uploaded(self, entry: SpoolEntry, stored: StoredObject) -> None:
        """The uploader's callback for clips and snapshots: the verified object's key and
        hash go to the event's row. Idempotent, and needs nothing but the entry's metadata,
        so it works as well for an entry replayed after a restart."""
        meta = entry.metadata
        event = event_from_metadata(meta)
        if entry.kind == "snapshot":
            ended_at = datetime.fromisoformat(meta["end"])
            self.index.store_snapshot(event, ended_at, stored.key, stored.sha256, stored.size)
        elif entry.kind == "clip":
            # the end too: the process may have died between spooling and indexing
            self.index.store_clip(
                event,
                datetime.fromisoformat(meta["end"]),
                (stored.key, stored.sha256, stored.size),
                (
                    datetime.fromisoformat(meta["clip-start"]),
                    datetime.fromisoformat(meta["clip-end"]),
                ),
                meta.get("clip-origin"),
            )
        log.info("event %s: %s %s stored", event.id, entry.kind, stored.key)

    def _write_clip(self, camera_id: str, packets: list[EncodedPacket], path: Path) -> None:
        mask = self.clip_masks.get(camera_id)
        if mask is None:
            remux_to_mp4(packets, path)
        else:
            mask_to_mp4(packets, path, mask)


def rebuild_from_recordings(
    index: EventIndex,
    store: ObjectStore,
    clips: ClipConfig,
    work_dir: Path,
    settle_s: float = 30.0,
    give_up_s: float = 900.0,
) -> list[str]:
    """Clips of events whose worker died, cut from the camera's 24/7 recording: for each event
    ended as orphaned `settle_s` to `give_up_s` ago without a clip (the journal on the dead
    worker's node had none: another node took the camera, or the journal is off), once the
    stored segments reach from the event's start into it, the clip is stitched from them,
    stored and indexed (EventRow.clip_origin "recording"); its pre-roll is what the recording
    holds of it. Returns the events' ids."""
    now = time.time()
    since, until = to_datetime(now - give_up_s), to_datetime(now - settle_s)
    assert since is not None and until is not None
    rebuilt = []
    for row in index.orphaned_without_clip(since, until):
        assert row.ended_at is not None
        event = event_of_row(row)
        start = event.started_at - clips.pre_roll_s
        end = row.ended_at.timestamp() + clips.post_roll_s
        segments = segments_between(index, row.camera_id, start, end)
        if not segments or segments[0].start.timestamp() > event.started_at:
            continue  # not (yet) stored from the event's start
        work_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=work_dir) as scratch:
            path = Path(scratch) / f"{event.id}.mp4"
            try:
                window = export_range(segments, store.read, start, end, path)
            except ClipError:
                continue
            if window[1] < event.started_at:
                continue  # the recording stops before the event: wait for more, or give up
            clip = path.read_bytes()
        digest, size = hashlib.sha256(clip).hexdigest(), len(clip)
        key = object_key(event.site, event.camera_id, event.started_at, path.name)
        tags = {"event-type": event.type, "kind": "clip"}
        store.put_stream(
            key,
            io.BytesIO(clip),
            size,
            "video/mp4",
            event_metadata(event),
            digest,
            tags,
            evidence=True,
        )
        window_at = (to_datetime(window[0]), to_datetime(window[1]))
        index.store_clip(event, row.ended_at, (key, digest, size), window_at, "recording")
        log.info(
            "event %s of camera %s: its clip rebuilt from the recording", event.id, event.camera_id
        )
        rebuilt.append(event.id)
    return rebuilt


def _read_file(path: str) -> bytes:
    return Path(path).read_bytes()


def _iso(epoch: float) -> str:
    stamp = to_datetime(epoch)
    assert stamp is not None
    return stamp.isoformat()


def _epoch(iso: str) -> float:
    return datetime.fromisoformat(iso).timestamp()


def event_metadata(event: Event) -> dict[str, str]:
    """The user metadata of an event's objects: all an index row needs, should the object be
    indexed before the event's start ever was (S3 allows ASCII only: free text such as zone
    names is percent-encoded).

    Example:
        >>> e = Event(camera_id="gate", site="hq", type="loitering", label="person", zone="东门",
        ...           severity="low", started_at=0.0, last_seen_at=1.0, ended_at=2.0)
        >>> event_metadata(e)["zone"], event_from_metadata(event_metadata(e)).zone
        ('%E4%B8%9C%E9%97%A8', '东门')
    """
    assert event.ended_at is not None
    metadata = {
        "site": event.site,
        "camera": event.camera_id,
        "event-id": event.id,
        "event-type": event.type,
        "label": quote(event.label),
        "zone": quote(event.zone),
        "severity": event.severity,
        "detail": quote(event.detail),
        "start": _iso(event.started_at),
        "end": _iso(event.ended_at),
    }
    if event.alarm is not None:
        metadata["alarm"] = "{}-{}".format(*event.alarm)
    return {name: value for name, value in metadata.items() if value}  # S3 drops empty ones


def event_from_metadata(meta: Mapping[str, str]) -> Event:
    """The event an object's `event_metadata` describes (objects stored before it had the
    descriptive fields give empty ones)."""
    alarm = meta.get("alarm")
    method, _, kind = alarm.partition("-") if alarm else ("", "", "")
    end = _epoch(meta["end"])
    return Event(
        camera_id=meta["camera"],
        site=meta["site"],
        type=meta["event-type"],
        label=unquote(meta.get("label", "")),
        zone=unquote(meta.get("zone", "")),
        severity=meta.get("severity", ""),
        started_at=_epoch(meta["start"]),
        last_seen_at=end,
        ended_at=end,
        detail=unquote(meta.get("detail", "")),
        alarm=(int(method), int(kind)) if alarm else None,
        id=meta["event-id"],
    )
