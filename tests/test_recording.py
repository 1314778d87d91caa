"""Continuous recording: the record stream cut into segments by stream copy, stored in S3
(SeaweedFS) and indexed, and a time range exported across segments, frame for frame."""

from __future__ import annotations

import hashlib
import io
import itertools
from datetime import UTC, datetime
from pathlib import Path

import av
import numpy as np
import pytest

from api.app import create_app
from api.config import ApiConfig
from ingest.ring import EncodedPacket, PacketRing
from storage.database.cameras import CameraConfig
from storage.database.index import EventIndex
from storage.database.recordings import segments_between
from storage.media.clips import remux_to_mp4
from storage.media.continuous import (
    Segment,
    SegmentCutter,
    export_range,
    recording_row,
    segment_metadata,
)
from storage.media.journal import GOP_S, PARTIAL, PacketJournal
from storage.media.objects import ObjectStore, object_key
from tests.apiclient import SEALER, api_client
from tests.clips import START
from tests.media import camera_packets

SEGMENT_S = 8.0


@pytest.fixture(scope="module")
def packets(vtest_h264: Path) -> list[EncodedPacket]:
    """vtest.avi as a camera sends it: H.264 at 10 fps, keyframes at most 2 s apart, 79.5 s."""
    return camera_packets(vtest_h264)


def cut(packets: list[EncodedPacket]) -> list[Segment]:
    """The segments a worker cuts while the packets arrive, and the rest when it stops."""
    ring = PacketRing(max_seconds=300)
    cutter = SegmentCutter("walkway", ring, SEGMENT_S)
    segments = []
    for packet in packets:
        ring.append(packet)
        segments += cutter.poll()
    return segments + cutter.poll(final=True)


def test_segments_hold_every_packet_once_each_from_a_keyframe(
    packets: list[EncodedPacket],
) -> None:
    segments = cut(packets)
    assert len(segments) >= 8  # 79.5 s in segments of 8 s and more (whole GOPs of <= 2 s)
    assert [p for s in segments for p in s.packets] == packets
    assert all(s.packets[0].is_keyframe for s in segments)
    assert all(a.end == b.start for a, b in itertools.pairwise(segments))  # back to back
    lengths = [s.end - s.start for s in segments[:-1]]
    assert all(SEGMENT_S - 1e-6 <= length < SEGMENT_S + 2.0 for length in lengths), lengths


def frames(data: bytes) -> list[tuple[float, str]]:
    """(presentation time, picture digest) of each frame."""
    with av.open(io.BytesIO(data), "r") as container:
        return [
            (
                float(frame.time or 0.0),
                hashlib.sha256(frame.to_ndarray(format="gray").tobytes()).hexdigest(),
            )
            for frame in container.decode(video=0)
        ]


def store_segments(
    packets: list[EncodedPacket], index: EventIndex, store: ObjectStore, work: Path
) -> None:
    """Cut, remux, store and index the segments, as a worker and its uploader do."""
    with index.sessions.begin() as session:
        for segment in cut(packets):
            path = work / f"segment-{segment.start:.3f}.mp4"
            remux_to_mp4(segment.packets, path)
            name = f"recording-{segment.start:.3f}.mp4"
            key = object_key(work.name, "walkway", segment.start, name)  # apart from other tests
            metadata = segment_metadata(segment, "hq")
            stored = store.put(key, path.read_bytes(), "video/mp4", metadata)
            session.add(recording_row(metadata, stored))


@pytest.mark.integration
def test_a_range_across_three_segments_plays_with_no_gap_or_repeat(
    packets: list[EncodedPacket], vtest_h264: Path, object_store: ObjectStore, tmp_path: Path
) -> None:
    index = EventIndex.connect(f"sqlite:///{tmp_path / 'index.db'}")
    store_segments(packets, index, object_store, tmp_path)

    start, end = START + 13.0, START + 31.0  # from the middle of the 2nd to the 4th segment
    rows = segments_between(index, "walkway", start, end)
    assert len(rows) == 3
    target = tmp_path / "export.mp4"
    first, last = export_range(rows, object_store.read, start, end, target)
    keyframe = max(p.wall_time for p in packets if p.is_keyframe and p.wall_time <= start)
    assert first == keyframe  # the last keyframe before the start
    assert last == pytest.approx(end - 0.1)  # the last frame before the end

    exported = frames(target.read_bytes())
    steps = np.diff([t for t, _ in exported])
    assert np.allclose(steps, 0.1, atol=1e-3), steps  # no gap and no repeated frame
    original = [
        digest
        for t, digest in frames(vtest_h264.read_bytes())
        if keyframe - START - 1e-6 <= t < end - START - 1e-6
    ]
    assert [digest for _, digest in exported] == original  # the same pictures, not re-encoded

    walkway = CameraConfig(id="walkway", site="hq", url="rtsp://127.0.0.1/walkway")
    app = create_app(
        index, object_store, [walkway], ApiConfig(), heartbeat_stale_s=5, sealer=SEALER
    )
    with api_client(app, index) as http:
        url = "/api/cameras/walkway/recording"
        since, until = (datetime.fromtimestamp(t, UTC).isoformat() for t in (start, end))
        served = http.get(url, params={"start": since, "end": until})
        assert served.status_code == 200 and served.content == target.read_bytes()
        assert http.get(url, params={"start": until, "end": since}).status_code == 422
        before = [datetime.fromtimestamp(START - t, UTC).isoformat() for t in (3600, 1800)]
        unrecorded = http.get(url, params={"start": before[0], "end": before[1]})
        assert unrecorded.status_code == 404


@pytest.mark.integration
def test_a_range_across_a_restart_is_cut_to_one_run(
    vtest_h264: Path, object_store: ObjectStore, tmp_path: Path
) -> None:
    """A worker restarted 10 s after the first stopped numbers its connections and timestamps
    afresh: the export keeps to the run covering most of the range, playable."""
    index = EventIndex.connect(f"sqlite:///{tmp_path / 'index.db'}")
    before = [p for p in camera_packets(vtest_h264) if p.wall_time < START + 40]
    after = [p for p in camera_packets(vtest_h264, START + 50) if p.wall_time < START + 70]
    store_segments(before, index, object_store, tmp_path)
    store_segments(after, index, object_store, tmp_path)
    rows = segments_between(index, "walkway", START + 20, START + 62)
    target = tmp_path / "export.mp4"
    first, last = export_range(rows, object_store.read, START + 20, START + 62, target)
    assert START + 18 <= first <= START + 20 and last < START + 40  # the first run's 20 s
    steps = np.diff([t for t, _ in frames(target.read_bytes())])
    assert np.allclose(steps, 0.1, atol=1e-3), steps


def test_the_journal_keeps_closed_gops_within_its_bounds_and_stitches_frame_for_frame(
    packets: list[EncodedPacket], tmp_path: Path
) -> None:
    """Each closed GOP on disk as the ring fills (the open one not yet), pruned to `keep_s`
    (or `max_bytes`); what is left is a run `export_range` stitches with no gap or repeat."""
    journal = PacketJournal(tmp_path / "by-time", keep_s=20.0, max_bytes=1 << 30)
    ring = PacketRing(max_seconds=300)
    cutter = SegmentCutter("walkway", ring, GOP_S)  # as the journal's loop cuts
    for packet in packets[:400]:  # 40 s of the footage
        ring.append(packet)
        journal.keep("hq", cutter.poll())
    (tmp_path / "by-time" / "walkway" / PARTIAL).write_bytes(b"a crash mid-write")
    rows = journal.rows("walkway")
    newest_keyframe = max(p.wall_time for p in packets[:400] if p.is_keyframe)
    assert rows[-1].end.timestamp() == pytest.approx(newest_keyframe)  # the open GOP is not in
    assert all(a.end == b.start for a, b in itertools.pairwise(rows))
    assert 20.0 <= (rows[-1].end - rows[0].start).total_seconds() <= 20.0 + 2 * 2.0
    start, end = rows[0].start.timestamp(), rows[-1].end.timestamp()
    target = tmp_path / "stitched.mp4"
    export_range(rows, lambda key: Path(key).read_bytes(), start, end, target)
    expected = tmp_path / "expected.mp4"
    remux_to_mp4([p for p in packets if start <= p.wall_time < end], expected)
    assert frames(target.read_bytes()) == frames(expected.read_bytes())

    by_size = PacketJournal(tmp_path / "by-size", keep_s=300.0, max_bytes=3 * rows[-1].size)
    ring, cutter = PacketRing(max_seconds=300), SegmentCutter("walkway", ring, GOP_S)
    for packet in packets[:400]:
        ring.append(packet)
        by_size.keep("hq", cutter.poll())
    assert 1 <= len(by_size.rows("walkway")) <= 4  # about three GOPs' bytes
    journal.remove_camera("walkway")  # a camera stopped in good order leaves nothing behind
    assert not (tmp_path / "by-time" / "walkway").exists()
