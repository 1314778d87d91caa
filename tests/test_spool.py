"""The spool and its uploader: clips wait on disk while S3 is away, survive SIGKILL, are
verified in S3, tampered spool files are quarantined, and the spool's full policy. All S3 here
is SeaweedFS (`weed mini`), started, stopped and restarted by the tests."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import signal
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import httpx
import numpy as np
import psutil
import pytest
from pydantic import ValidationError
from sqlalchemy import select

from common.backoff import Backoff
from common.types import Event
from ingest.ring import EncodedPacket, PacketRing
from storage.config import ClipConfig, EmbeddedS3Config, SpoolConfig
from storage.database.index import EventIndex, EventRow
from storage.media.embedded_s3 import EmbeddedS3Server, load_or_create_credentials
from storage.media.event_clips import EventRecorder, event_metadata
from storage.media.objects import MIN_PART_SIZE, ObjectStore, StoredObject
from storage.media.spool import CheckedEntry, Kind, Spool, SpoolEntry, SpoolFullError, SpoolReport
from storage.media.uploader import OnUploaded, Uploader, UploadMismatchError
from tests.clips import START
from tests.events import person_event
from tests.media import camera_packets
from tests.servers import Pipeline, RtspCamera, free_port, pipeline_config
from tests.sinks import UploadingRecorder

OUTAGE_S = 30.0
WHOLE_VIEW = [[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]]


@dataclass
class S3:
    """A SeaweedFS server the test may stop and start again (same port, same data)."""

    config: EmbeddedS3Config
    server: EmbeddedS3Server

    def store(self, bucket: str) -> ObjectStore:
        store = ObjectStore.from_config(self.config.model_copy(update={"bucket": bucket}))
        if self.server.running:
            store.ensure_bucket()
        return store

    def up(self) -> None:
        if not self.server.running:
            self.server.start()


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3]:
    config = EmbeddedS3Config(data_dir=tmp_path_factory.mktemp("s3"), port=free_port())
    server = EmbeddedS3Server(config)
    server.start()
    yield S3(config, server)
    server.stop()


@pytest.fixture
def s3_up(s3: S3) -> S3:
    s3.up()  # whatever an earlier test left
    return s3


@pytest.fixture(scope="module")
def packets(vtest_h264: Path) -> list[EncodedPacket]:
    return camera_packets(vtest_h264)


def jpeg() -> bytes:
    ok, data = cv2.imencode(".jpg", np.full((48, 64, 3), 128, np.uint8))
    assert ok
    return bytes(data)


def wait_until(check: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.1)
    raise AssertionError(f"not within {timeout:g}s: {what}")


def bucket_objects(store: ObjectStore) -> list[str]:
    return [o.object_name for o in store.client.list_objects(store.bucket, recursive=True)]


def assert_stored_as_indexed(store: ObjectStore, index: EventIndex, event_id: str) -> None:
    row = index.get_event(event_id)
    assert row is not None and row.state == "ended" and row.clip_error is None
    for key, sha256 in ((row.clip_key, row.clip_sha256), (row.snapshot_key, row.snapshot_sha256)):
        assert key is not None and sha256 is not None
        stored = store.stat(key)
        assert stored is not None and stored.sha256 == sha256
        assert hashlib.sha256(store.read(key)).hexdigest() == sha256


def workers(supervisor: psutil.Process) -> list[int]:
    found = []
    for child in supervisor.children():
        with contextlib.suppress(psutil.Error):  # a killed one is a zombie until reaped
            if "worker" in child.cmdline():
                found.append(child.pid)
    return found


def a_file(path: Path, size: int) -> Path:
    path.write_bytes(os.urandom(size))
    return path


# -- the spool on its own ----------------------------------------------------------------------


def test_entries_are_durable_listed_oldest_first_and_replayed(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool", SpoolConfig())
    assert spool.open() == []
    added = [
        spool.add(a_file(tmp_path / f"{n}.mp4", 1000 + n), f"k/{n}.mp4", "video/mp4", {}, "clip")
        for n in range(3)
    ]
    assert not (tmp_path / "0.mp4").exists()  # moved in
    data = added[1].path.read_bytes()
    assert added[1].sha256 == hashlib.sha256(data).hexdigest()
    assert spool.check(added[1]) == CheckedEntry(added[1], data, hashlib.md5(data).hexdigest())
    slot = added[0].path.parent
    (slot / "half-moved.mp4").write_bytes(b"crashed before its manifest")
    (slot / "x.manifest.json.1234.tmp").write_bytes(b"{")
    spool.close()

    again = Spool(tmp_path / "spool", SpoolConfig())
    assert again.open() == added  # the same entries, oldest first
    assert not (slot / "half-moved.mp4").exists()
    assert not list(slot.glob("*.tmp"))
    assert again.remove(added[0]) == added[0].path  # the caller's to unlink
    assert [e.id for e in again.entries()] == [e.id for e in added[1:]]
    assert not (slot / f"{added[0].id}.manifest.json").exists()
    assert again.stats.entries == 2 and again.stats.bytes == added[1].size + added[2].size
    again.close()  # as if the process died before it unlinked the file

    third = Spool(tmp_path / "spool", SpoolConfig())
    assert third.open() == added[1:]
    assert not added[0].path.exists()  # a file without a manifest is swept


def test_an_unreadable_manifest_quarantines_its_file_and_a_newer_one_still_loads(
    tmp_path: Path,
) -> None:
    reports: list[SpoolReport] = []
    spool = Spool(tmp_path / "spool", SpoolConfig(), reports.append)
    spool.open()
    meta = {"camera": "gate", "site": "hq"}
    broken, newer = (
        spool.add(a_file(tmp_path / f"{n}.mp4", 1000), f"k/{n}.mp4", "video/mp4", meta, "clip")
        for n in range(2)
    )
    slot, clip = broken.path.parent, broken.path.read_bytes()
    (slot / f"{broken.id}.manifest.json").write_bytes(b'{"key": "k/0.mp4", "si')  # torn
    manifest = slot / f"{newer.id}.manifest.json"
    manifest.write_text(json.dumps({**json.loads(manifest.read_text()), "added_later": 1}))
    spool.close()

    again = Spool(tmp_path / "spool", SpoolConfig(), reports.append)
    assert [e.id for e in again.open()] == [newer.id]
    assert (again.quarantine_dir / broken.path.name).read_bytes() == clip  # kept, not deleted
    assert [(r.what, r.key) for r in reports] == [("quarantined", broken.id)]


def test_each_worker_has_its_own_slot_and_orphaned_slots_are_adopted(tmp_path: Path) -> None:
    root = tmp_path / "spool"
    first, second = Spool(root, SpoolConfig()), Spool(root, SpoolConfig())
    first.open()
    second.open()
    assert (first.slot, second.slot) == (root / "slot-0", root / "slot-1")
    entry = second.add(a_file(tmp_path / "a.mp4", 500), "k/a.mp4", "video/mp4", {}, "clip")
    assert first.entries() == []  # never both uploading one entry
    first.close()
    second.close()  # e.g. the worker count went down: slot-1 has nobody
    third = Spool(root, SpoolConfig())
    [adopted] = third.open()
    assert third.slot == root / "slot-0"
    assert (adopted.key, adopted.sha256) == (entry.key, entry.sha256)
    assert adopted.path == root / "slot-0" / entry.path.name
    assert hashlib.sha256(adopted.path.read_bytes()).hexdigest() == entry.sha256
    assert not entry.path.exists()


def test_the_full_policy_recordings_yield_to_clips_and_clips_only_to_the_disk(
    tmp_path: Path,
) -> None:
    reports: list[SpoolReport] = []
    config = SpoolConfig(max_bytes=3000, min_free_bytes=0)
    spool = Spool(tmp_path / "spool", config, reports.append)
    spool.open()

    def add(name: str, size: int, kind: Any) -> None:
        meta = {"camera": "gate", "site": "hq"}
        spool.add(a_file(tmp_path / name, size), f"hq/gate/{name}", "video/mp4", meta, kind)

    add("rec-1.mp4", 1000, "recording")
    add("rec-2.mp4", 1000, "recording")
    with pytest.raises(SpoolFullError):
        add("rec-3.mp4", 1500, "recording")  # a new recording is refused first ...
    assert (tmp_path / "rec-3.mp4").exists()  # ... and left to its owner
    add("clip-1.mp4", 1500, "clip")  # a clip evicts the oldest recording
    assert [e.key for e in spool.entries()] == ["hq/gate/rec-2.mp4", "hq/gate/clip-1.mp4"]
    add("clip-2.mp4", 1500, "clip")  # and the next one
    assert [e.kind for e in spool.entries()] == ["clip", "clip"]
    add("clip-3.mp4", 1000, "clip")  # no recording left: kept beyond the limit
    assert spool.stats.bytes == 4000
    spool.config = SpoolConfig(max_bytes=3000, min_free_bytes=2**62)
    with pytest.raises(SpoolFullError):
        add("clip-4.mp4", 1000, "clip")  # ... until the disk would run short
    seen = [(r.what, r.key.rsplit("/", 1)[1], r.refused) for r in reports]
    assert seen == [
        ("storage_full", "rec-3.mp4", True),
        ("evicted", "rec-1.mp4", False),
        ("evicted", "rec-2.mp4", False),
        ("storage_full", "clip-3.mp4", False),
        ("storage_full", "clip-4.mp4", True),
    ]
    assert (spool.stats.evicted, spool.stats.refused, spool.stats.full) == (2, 2, 3)


def test_backoff_grows_with_jitter_up_to_its_cap() -> None:
    backoff = Backoff(0.5, 8.0)
    delays = [[backoff.delay(n) for _ in range(200)] for n in range(8)]
    ceilings = [min(8.0, 0.5 * 2**n) for n in range(8)]
    assert all(c / 2 <= d <= c for c, ds in zip(ceilings, delays, strict=True) for d in ds)
    assert max(delays[7]) > 6.0 and len({round(d, 3) for d in delays[7]}) > 100  # jittered


# -- against SeaweedFS ---------------------------------------------------------------------


@pytest.mark.integration
def test_a_tampered_spool_file_is_quarantined_and_never_uploaded(s3_up: S3, tmp_path: Path) -> None:
    store = s3_up.store("spool-tamper")
    reports: list[SpoolReport] = []
    spool = Spool(tmp_path / "spool", SpoolConfig(), reports.append)
    spool.open()
    meta = {"camera": "gate", "site": "hq"}
    # The bad one first (checked by the uploader) and in the middle (checked ahead, while
    # the one before it goes up).
    bad, first, middle, last = [
        spool.add(a_file(tmp_path / f"{name}.mp4", 4000), f"hq/gate/{name}.mp4", "video/mp4",
                  meta, "clip")
        for name in ("bad", "first", "middle", "last")
    ]  # fmt: skip
    for tampered in (bad, middle):
        with open(tampered.path, "r+b") as data:  # one byte changed on disk after spooling
            data.seek(100)
            byte = data.read(1)
            data.seek(100)
            data.write(bytes([byte[0] ^ 0xFF]))
    uploaded: list[str] = []
    uploader = Uploader(spool, store, {"clip": lambda entry, stored: uploaded.append(entry.key)})
    uploader.start()
    assert uploader.stop(drain_s=20) == 0
    assert uploaded == [first.key, last.key]
    assert bucket_objects(store) == [first.key, last.key]
    assert [(r.what, r.key) for r in reports] == [("quarantined", k) for k in (bad.key, middle.key)]
    assert spool.stats.quarantined == 2
    for tampered in (bad, middle):
        assert (spool.quarantine_dir / tampered.path.name).exists()
        assert (spool.quarantine_dir / f"{tampered.id}.manifest.json").exists()


@pytest.mark.integration
def test_an_upload_whose_indexing_fails_is_not_sent_again(s3_up: S3, tmp_path: Path) -> None:
    """The index was busy twice after a verified upload: only the indexing is retried (on a
    WORM bucket each PUT would be one more version the server must keep)."""
    store = s3_up.store("spool-index-retry")
    spool = Spool(tmp_path / "spool", SpoolConfig())
    spool.open()
    meta = {"camera": "gate", "site": "hq"}
    entry = spool.add(a_file(tmp_path / "c.mp4", 4000), "hq/gate/c.mp4", "video/mp4", meta, "clip")
    puts: list[str] = []
    put_stream = store.put_stream

    def counted(key: str, *args: Any, **kwargs: Any) -> str:
        puts.append(key)
        return put_stream(key, *args, **kwargs)

    store.put_stream = counted  # type: ignore[method-assign]
    failures = iter([RuntimeError("database is locked")] * 2)
    indexed: list[str] = []

    def index(_: SpoolEntry, stored: StoredObject) -> None:
        for failure in failures:
            raise failure
        indexed.append(stored.key)

    uploader = Uploader(spool, store, {"clip": index}, Backoff(0.05, 0.1))
    uploader.start()
    assert uploader.stop(drain_s=10) == 0
    assert puts == [entry.key] and indexed == [entry.key]


@pytest.mark.integration
def test_objects_carry_metadata_tags_type_and_a_short_presigned_link(
    s3_up: S3, packets: list[EncodedPacket], tmp_path: Path
) -> None:
    store = s3_up.store("spool-meta")
    ring = PacketRing(120)
    for packet in packets:
        ring.append(packet)
    index = EventIndex.connect(f"sqlite:///{tmp_path / 'index.db'}")
    recorder = UploadingRecorder(index, store, {"gate": ring}, ClipConfig(), tmp_path / "work")
    recorder.start()
    event = person_event(
        type="loitering",
        zone="lawn",
        severity="low",
        started_at=START + 10,
        last_seen_at=START + 14,
        snapshot=jpeg(),
        ended_at=START + 14,
    )
    recorder.event_started(event)
    recorder.event_ended(event)
    recorder.stop()
    assert_stored_as_indexed(store, index, event.id)
    row = index.get_event(event.id)
    assert row is not None and row.clip_key is not None and row.snapshot_key is not None
    assert row.clip_key == f"hq/gate/2023/11/14/{event.id}.mp4"  # site/camera/UTC date/event

    clip = store.stat(row.clip_key)
    assert clip is not None and clip.content_type == "video/mp4"
    assert clip.metadata is not None
    assert {k: v for k, v in clip.metadata.items() if k != "sha256"} == {
        "site": "hq",
        "camera": "gate",
        "event-id": event.id,
        "event-type": "loitering",
        "label": "person",
        "zone": "lawn",
        "severity": "low",
        "start": "2023-11-14T22:13:30+00:00",
        "end": "2023-11-14T22:13:34+00:00",
        "clip-start": row.clip_start.isoformat() if row.clip_start else "",
        "clip-end": row.clip_end.isoformat() if row.clip_end else "",
    }
    assert clip.etag == hashlib.md5(store.read(row.clip_key)).hexdigest()  # one PUT
    assert store.tags(row.clip_key) == {"event-type": "loitering", "kind": "clip"}
    snapshot = store.stat(row.snapshot_key)
    assert snapshot is not None and snapshot.content_type == "image/jpeg"
    assert store.tags(row.snapshot_key) == {"event-type": "loitering", "kind": "snapshot"}

    url = store.presigned_url(row.clip_key, expires_s=60)
    assert "X-Amz-Expires=60" in url and url.startswith(f"http://127.0.0.1:{s3_up.config.port}/")
    fetched = httpx.get(url, timeout=10)  # no credentials: the signature is the permission
    assert fetched.status_code == 200 and fetched.content == store.read(row.clip_key)
    assert "X-Amz-Expires=3600" in store.presigned_url(row.clip_key, expires_s=86400)  # capped
    unsigned = url.split("?", 1)[0]
    assert httpx.get(unsigned, timeout=10).status_code == 403

    # Clients outside reach the server by another name: the links are signed for that one.
    outside = f"http://localhost:{s3_up.config.port}"
    settings = {**s3_up.config.model_dump(), "bucket": "spool-meta", "public_url": outside}
    public = ObjectStore.from_config(EmbeddedS3Config.model_validate(settings))
    link = public.presigned_url(row.clip_key, expires_s=60)
    assert link.startswith(f"{outside}/spool-meta/")
    fetched = httpx.get(link, timeout=10)
    assert fetched.status_code == 200 and fetched.content == store.read(row.clip_key)
    for wrong in (f"{outside}/bucket", "ftp://s3.example.org", "https://k:s@s3.example.org"):
        with pytest.raises(ValidationError, match=r"expected http\(s\)://host\[:port\]"):
            EmbeddedS3Config.model_validate({**settings, "public_url": wrong})


@pytest.mark.integration
def test_an_upload_the_server_stored_differently_is_not_taken(s3_up: S3, tmp_path: Path) -> None:
    """The server's ETag of the stored bytes must be the MD5 of the checked bytes, on every
    upload (only the first one is also read back with a HEAD)."""
    store = s3_up.store("spool-etag")
    spool = Spool(tmp_path / "spool", SpoolConfig())
    spool.open()
    uploader = Uploader(spool, store)
    first, second = (
        spool.add(a_file(tmp_path / f"{n}.mp4", 4000), f"hq/gate/{n}.mp4", "video/mp4", {}, "clip")
        for n in range(2)
    )
    assert uploader.upload(first).etag == hashlib.md5(first.path.read_bytes()).hexdigest()
    put_stream = store.put_stream

    def altered(*args: Any, **kwargs: Any) -> str:
        put_stream(*args, **kwargs)
        return "0" * 32  # as if a proxy or a faulty disk changed the bytes on the way

    store.put_stream = altered  # type: ignore[method-assign]
    with pytest.raises(UploadMismatchError, match="etag"):
        uploader.upload(second)


@pytest.mark.integration
def test_a_large_object_goes_up_in_parts_and_is_verified(s3_up: S3, tmp_path: Path) -> None:
    store = s3_up.store("spool-parts")
    spool = Spool(tmp_path / "spool", SpoolConfig(part_size=MIN_PART_SIZE))
    spool.open()
    source = a_file(tmp_path / "segment.mp4", 2 * MIN_PART_SIZE + 12345)
    entry = spool.add(source, "hq/gate/rec/segment.mp4", "video/mp4", {}, "recording")
    checked = spool.check(entry)
    assert checked.data is None and checked.etag.endswith("-3")  # streamed, in three parts
    stored = Uploader(spool, store).upload(entry)  # raises if size, SHA-256 or ETag differ
    assert stored.etag == checked.etag and stored.size == entry.size
    assert hashlib.sha256(store.read(entry.key)).hexdigest() == entry.sha256


@pytest.mark.integration
def test_clips_wait_in_the_spool_while_s3_is_down_and_all_arrive_once(
    s3: S3, packets: list[EncodedPacket], tmp_path: Path
) -> None:
    """S3 stopped for 30 s while events fire (recorder, real packet ring): each event is
    `ended` with its clip and snapshot spooled; S3 back: all uploaded, verified, none twice."""
    s3.up()
    store = s3.store("spool-outage")
    ring = PacketRing(120)
    for packet in packets:
        ring.append(packet)
    index = EventIndex.connect(f"sqlite:///{tmp_path / 'index.db'}")
    spool = Spool(tmp_path / "spool", SpoolConfig())
    spool.open()
    clips = ClipConfig(pre_roll_s=1.0, post_roll_s=0.0)
    recorder = EventRecorder(index, spool, {"gate": ring}, clips, tmp_path / "work")
    uploaded: dict[Kind, OnUploaded] = {"clip": recorder.uploaded, "snapshot": recorder.uploaded}
    uploader = Uploader(spool, store, uploaded, Backoff(0.2, 2.0))
    recorder.start()
    uploader.start()
    try:
        s3.server.stop()
        down_at = time.monotonic()
        events: list[Event] = []
        while time.monotonic() - down_at < OUTAGE_S:
            n = len(events)
            event = person_event(
                zone="lawn",
                started_at=START + 2 + 2 * n,
                last_seen_at=START + 3 + 2 * n,
                snapshot=jpeg(),
                ended_at=START + 3 + 2 * n,
            )
            recorder.event_started(event)
            recorder.event_ended(event)
            events.append(event)
            time.sleep(2.0)
        wait_until(lambda: len(spool) == 2 * len(events), 10, "every clip and snapshot spooled")
        for event in events:
            row = index.get_event(event.id)
            assert row is not None and row.state == "ended"
            assert row.clip_key is None and row.clip_error is None  # waiting, not failed
        assert uploader.stats.failures >= len(events)  # it kept trying
        s3.up()
        wait_until(lambda: len(spool) == 0, 30, "the spool uploaded")
    finally:
        recorder.stop()
        uploader.stop(drain_s=5)
    assert len(events) >= 14
    for event in events:
        assert_stored_as_indexed(store, index, event.id)
    names = bucket_objects(store)
    assert len(names) == len(set(names)) == 2 * len(events)
    assert uploader.stats.uploaded == 2 * len(events)


@pytest.mark.integration
def test_a_worker_killed_mid_upload_leaves_every_clip_exactly_once(
    s3: S3, rtsp_camera: RtspCamera, tmp_path: Path
) -> None:
    """The real pipeline against an S3 the test controls: S3 stops so clips pile up in the
    spool, comes back, and the worker is SIGKILLed while it uploads them; the supervisor
    restarts it on the same data dir, it replays the spool, and in the end every object in
    the bucket is an indexed clip or snapshot with the index's hash, once."""
    s3.up()
    bucket = "spool-kill"
    store = s3.store(bucket)
    credentials = load_or_create_credentials(s3.config.data_dir)
    config = pipeline_config(
        tmp_path,
        cameras=[
            {
                "id": "walkway",
                "site": "campus",
                "url": rtsp_camera.url("walkway"),
                "zones": [{"name": "all", "points": WHOLE_VIEW}],
            }
        ],
        workers=1,
        analytics={"events": {"end_after_s": 1, "max_duration_s": 3}},
        clips={"pre_roll_s": 1, "post_roll_s": 0.5},
        spool={"retry_min_s": 0.2, "retry_max_s": 1.0},
        storage={
            "type": "s3",
            "endpoint": f"127.0.0.1:{s3.config.port}",
            "bucket": bucket,
            "access_key": credentials.access_key,
            "secret_key": credentials.secret_key,
            "secure": False,
        },
    )
    config["ingest"]["ring_s"] = 30
    db = tmp_path / "data" / "xueliang.db"
    slot = tmp_path / "data" / "spool" / "slot-0"

    def waiting() -> int:
        return len(list(slot.glob("*.manifest.json")))

    pipeline = Pipeline(tmp_path, config)
    pipeline.start()
    try:
        pipeline.wait_for("/api/events", lambda body: body["items"], timeout=60)
        s3.server.stop()
        wait_until(lambda: waiting() >= 8, 60, "clips piling up in the spool")
        assert pipeline.process is not None
        supervisor = psutil.Process(pipeline.process.pid)
        [worker] = workers(supervisor)
        s3.up()
        peak = waiting()
        deadline = time.monotonic() + 30
        while waiting() >= peak and time.monotonic() < deadline:
            peak = max(peak, waiting())
            time.sleep(0.002)
        left = waiting()
        os.kill(worker, signal.SIGKILL)
        assert 0 < left < peak, (left, peak)  # killed while uploading

        wait_until(
            lambda: [p for p in workers(supervisor) if p != worker],
            20,
            "the supervisor restarting the worker",
        )
        wait_until(lambda: waiting() == 0, 30, "the restarted worker replaying the spool")
    finally:
        pipeline.stop()  # SIGTERM: the worker ends its events and drains the spool
    assert waiting() == 0, pipeline.log()

    index = EventIndex.connect(f"sqlite:///{db}")
    with index.sessions() as session:
        rows = session.scalars(select(EventRow)).all()
    clip_rows = [r for r in rows if r.clip_key is not None]
    assert len(clip_rows) >= 4  # the 8 spool entries were clips and snapshots
    indexed: dict[str, str | None] = {}
    for row in rows:
        for key, sha256 in (
            (row.clip_key, row.clip_sha256),
            (row.snapshot_key, row.snapshot_sha256),
        ):
            if key is not None:
                indexed[key] = sha256
    names = bucket_objects(store)
    assert len(names) == len(set(names))
    assert sorted(names) == sorted(indexed), "an object without its row, or a row without it"
    for key, sha256 in indexed.items():
        assert hashlib.sha256(store.read(key)).hexdigest() == sha256
    pending = [r.id for r in rows if r.state == "ended" and not r.clip_key and not r.clip_error]
    assert pending == []
    assert [r for r in rows if r.type in ("spool_quarantine", "storage_full")] == []


def test_media_indexed_before_their_event_make_a_whole_row(tmp_path: Path) -> None:
    """After a crash, a replayed snapshot may reach the index before its event's start ever
    did: the row is made from the object's metadata alone, and is complete."""
    index = EventIndex.connect(f"sqlite:///{tmp_path / 'index.db'}")
    spool = Spool(tmp_path / "spool", SpoolConfig())
    spool.open()
    recorder = EventRecorder(index, spool, {}, ClipConfig(), tmp_path / "work")
    event = person_event(
        zone="东门 (east gate)",
        started_at=START,
        last_seen_at=START + 8,
        ended_at=START + 8,
        detail="2 people",
        alarm=(5, 6),
    )
    entry = spool.add(
        a_file(tmp_path / "s.jpg", 100), "hq/gate/s.jpg", "image/jpeg", event_metadata(event),
        "snapshot",
    )  # fmt: skip
    recorder.uploaded(entry, StoredObject(entry.key, entry.size, entry.sha256))
    row = index.get_event(event.id)
    assert row is not None
    assert (row.label, row.zone, row.severity, row.detail) == (
        "person", "东门 (east gate)", "high", "2 people"
    )  # fmt: skip
    assert (row.alarm_method, row.alarm_type, row.state) == (5, 6, "ended")
    assert row.snapshot_key == entry.key and row.ended_at is not None
