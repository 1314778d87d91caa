"""Event sinks for tests: one that keeps what it is given, and the storage stage as a worker
runs it."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from common.types import ClipMask, Event
from ingest.ring import PacketRing
from storage.config import ClipConfig, SpoolConfig
from storage.database.index import EventIndex
from storage.media.event_clips import EventRecorder
from storage.media.objects import ObjectStore
from storage.media.spool import Spool
from storage.media.uploader import Uploader


class Collected:
    """Keeps the events started and ended, in order."""

    def __init__(self) -> None:
        self.started: list[Event] = []
        self.ended: list[Event] = []

    def event_started(self, event: Event) -> None:
        self.started.append(event)

    def event_ended(self, event: Event) -> None:
        self.ended.append(event)


class UploadingRecorder(EventRecorder):
    """An EventRecorder with a spool of its own (under `work_dir/spool`) and its uploader into
    `store`, wired as a worker wires them; `stop` returns once every clip and snapshot is
    uploaded and indexed."""

    def __init__(
        self,
        index: EventIndex,
        store: ObjectStore,
        rings: Mapping[str, PacketRing],
        clips: ClipConfig,
        work_dir: Path,
        *,
        clip_masks: Mapping[str, ClipMask] | None = None,
    ) -> None:
        spool = Spool(work_dir / "spool", SpoolConfig())
        super().__init__(index, spool, rings, clips, work_dir, clip_masks=clip_masks)
        self.uploader = Uploader(
            self.spool, store, dict.fromkeys(("clip", "snapshot"), self.uploaded)
        )

    def start(self) -> None:
        self.spool.open()
        self.uploader.start()
        super().start()

    def stop(self) -> None:
        super().stop()
        left = self.uploader.stop(drain_s=60)
        self.spool.close()
        assert left == 0, f"{left} spool entries not uploaded"
