"""The packet rings on local disk: what a worker that dies leaves behind for the next.

A worker's packet rings live in its memory; when it is killed, the clips of the events it
was recording would be lost with them. So each camera's ring is also written to the node's
disk, GOP by GOP as each closes (an MP4 file per GOP, by stream copy: the cost is the
stream's bitrate in disk writes), and pruned to what the ring holds. A worker that takes the
camera over on the same node cuts the orphaned events' clips from these files. What a crash
can lose is the GOP still open (a few seconds); a file is renamed into place whole, so none is
ever half there. The node's own crash is not covered: the files are not synced to disk.
"""

from __future__ import annotations

import os
import shutil
from collections import deque
from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path

from storage.database.engine import to_datetime
from storage.database.recordings import RecordingRow
from storage.media.clips import remux_to_mp4
from storage.media.continuous import Segment, SegmentLoop

GOP_S = 0.5  # shorter than any GOP: every closed GOP becomes a file of its own
PARTIAL = ".partial.mp4"


def file_name(segment: Segment) -> str:
    """A journal file's name, which holds all that stitching it needs.

    Example:
        >>> from ingest.ring import EncodedPacket, StreamInfo
        >>> info = StreamInfo(codec="h264", width=2, height=2, time_base=Fraction(1, 90000),
        ...                   template=None, connection=3)
        >>> packet = EncodedPacket(data=b"x", pts=9000, dts=9000, is_keyframe=True, wall_time=5.0,
        ...                        stream=info)
        >>> file_name(Segment("gate", [packet], 5.0, 7.0))
        '5.000000_7.000000_3_9000_1-90000.mp4'
    """
    stream = segment.packets[0].stream
    time_base = f"{stream.time_base.numerator}-{stream.time_base.denominator}"
    fields = (f"{segment.start:.6f}", f"{segment.end:.6f}", stream.connection, segment.first_pts)
    return "_".join(map(str, (*fields, time_base))) + ".mp4"


def file_row(camera_id: str, path: Path) -> RecordingRow | None:
    """A journal file as a recording segment (not stored anywhere: `key` is its path), for
    `export_range`; None for a name that is not a journal file's."""
    try:
        start, end, connection, first_pts, time_base = path.stem.split("_")
        row = RecordingRow(
            site="",
            camera_id=camera_id,
            start=to_datetime(float(start)),
            end=to_datetime(float(end)),
            key=str(path),
            size=path.stat().st_size,
            sha256="",
            connection=int(connection),
            first_pts=int(first_pts),
            time_base=str(Fraction(time_base.replace("-", "/"))),
        )
    except (ValueError, ZeroDivisionError, OSError):
        return None
    return row


class PacketJournal(SegmentLoop):
    """Each added camera's closed GOPs in `directory/CAMERA/`, `keep_s` of them at most (and
    at most `max_bytes`); a camera removed in good order has its files removed too.

    Example:
        >>> journal = PacketJournal(Path("data/journal"), 120, 64 << 20)  # doctest: +SKIP
        >>> journal.add_camera("gate", "hq", ring, GOP_S)  # doctest: +SKIP
        >>> journal.rows("gate")  # by the next worker, after a crash  # doctest: +SKIP
        [RecordingRow(...), ...]
    """

    def __init__(self, directory: Path, keep_s: float, max_bytes: int, poll_s: float = 1.0):
        super().__init__(directory, poll_s)
        self.keep_s = keep_s
        self.max_bytes = max_bytes
        # By camera, the files this process wrote, oldest first: pruned without listing the
        # folder every second (the loop's thread alone uses it).
        self._written: dict[str, deque[tuple[Path, float, int]]] = {}  # (path, end, size)

    def keep(self, site: str, segments: Sequence[Segment]) -> None:
        for segment in segments:
            folder = self.work_dir / segment.camera_id
            folder.mkdir(parents=True, exist_ok=True)
            partial, path = folder / PARTIAL, folder / file_name(segment)
            remux_to_mp4(segment.packets, partial)
            os.replace(partial, path)
            written = self._written.setdefault(segment.camera_id, deque())
            written.append((path, segment.end, path.stat().st_size))
            self._prune(written)

    def _prune(self, written: deque[tuple[Path, float, int]]) -> None:
        """Drop the oldest files while they end more than `keep_s` before the newest, or the
        files hold more than `max_bytes`; the newest stays whatever its size."""
        newest, total = written[-1][1], sum(size for _, _, size in written)
        while len(written) > 1 and (newest - written[0][1] > self.keep_s or total > self.max_bytes):
            path, _, size = written.popleft()
            path.unlink(missing_ok=True)
            total -= size

    def rows(self, camera_id: str) -> list[RecordingRow]:
        """The camera's journal files as segments, oldest first."""
        folder = self.work_dir / camera_id
        found = [file_row(camera_id, path) for path in folder.glob("*.mp4") if path.name != PARTIAL]
        return sorted((row for row in found if row is not None), key=lambda row: row.start)

    def remove_camera(self, camera_id: str) -> None:
        """The camera stops here in good order: its clips are cut from its ring as usual."""
        with self._lock:
            self._cameras.pop(camera_id, None)
        self.forget(camera_id)

    def forget(self, camera_id: str) -> None:
        """Remove the camera's files (a dead worker's, once used; or this one's, stopped)."""
        self._written.pop(camera_id, None)
        shutil.rmtree(self.work_dir / camera_id, ignore_errors=True)
