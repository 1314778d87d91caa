"""Faces blurred in exported clips, on real footage: carphone_pristine.mp4 (a man talking in a
car, 176x144, H.264 with B-frames) as a camera's packets, exported by `mask_to_mp4` and by the
recorder into SeaweedFS; a camera without privacy keeps the byte-for-byte stream copy."""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import io
import threading
import time
from pathlib import Path
from typing import Any

import av
import av.container
import cv2
import numpy as np
import numpy.typing as npt
import pytest

import storage.media.event_clips
from analytics.privacy import FaceDetector, FaceMasker, FaceMasks, PrivacyConfig
from common.types import BGRImage, Box
from ingest.ring import EncodedPacket, PacketRing
from storage.config import ClipConfig
from storage.database.index import EventIndex
from storage.media.clips import mask_to_mp4, remux_to_mp4
from storage.media.objects import SHA256_META, ObjectStore
from tests.clips import START
from tests.events import person_event
from tests.media import camera_packets
from tests.servers import Pipeline, RtspCamera, pipeline_config, running
from tests.sinks import UploadingRecorder
from xueliang.samples import encode

MARGIN = 0.15  # FaceBlurrer's default: how far beyond a face box the blur reaches

Decoded = list[tuple[float, BGRImage]]  # (presentation time in s, picture) per frame


def opened(source: Path | bytes) -> av.container.InputContainer:
    if isinstance(source, Path):
        return av.open(str(source), "r")
    return av.open(io.BytesIO(source), "r")


def decode(source: Path | bytes) -> Decoded:
    with opened(source) as container:
        return [
            (float(frame.time or 0.0), frame.to_ndarray(format="bgr24").astype(np.uint8))
            for frame in container.decode(video=0)
        ]


def demuxed(source: Path | bytes) -> list[bytes]:
    with opened(source) as container:
        return [bytes(packet) for packet in container.demux(video=0) if packet.size]


def detail(picture: BGRImage) -> float:
    """Variance of the Laplacian: high for sharp features, near 0 for a smooth patch."""
    grey = cv2.cvtColor(picture, cv2.COLOR_BGR2GRAY)
    return float(cv2.Laplacian(grey, cv2.CV_64F).var())


def pixels(box: Box, picture: BGRImage, grow: float = 0.0) -> tuple[int, int, int, int]:
    """`box` in pixels of `picture`, enlarged by `grow` of its size and 2 pixels (what the
    encoder's filters smear across the blur's edge) on every side: x1, y1, x2, y2."""
    height, width = picture.shape[:2]
    corners = np.array(box.to_list()) * [width, height, width, height]
    extra = grow * (corners[2:] - corners[:2]) + (2 if grow else 0)
    x1, y1 = np.floor(np.maximum(corners[:2] - extra, 0)).astype(int)
    x2, y2 = np.ceil(corners[2:] + extra).astype(int)
    return int(x1), int(y1), int(x2), int(y2)


def psnr(a: BGRImage, b: BGRImage, where: npt.NDArray[np.bool_]) -> float:
    error = np.mean((a[where].astype(np.float64) - b[where].astype(np.float64)) ** 2)
    return float(10 * np.log10(255**2 / max(float(error), 1e-12)))


@pytest.fixture(scope="module")
def packets(carphone_mp4: Path) -> list[EncodedPacket]:
    return camera_packets(carphone_mp4)


@pytest.fixture(scope="module")
def originals(carphone_mp4: Path) -> Decoded:
    return decode(carphone_mp4)


@pytest.fixture(scope="module")
def faces(originals: Decoded) -> list[list[Box]]:
    """The faces of every original frame, found by the detector snapshots use."""
    detector = FaceDetector(PrivacyConfig(enabled=True))
    found = [[face.box for face in detector.detect(picture)] for _, picture in originals]
    assert all(len(boxes) == 1 for boxes in found)  # the man's face, in every frame
    return found


@pytest.fixture(scope="module")
def masker() -> FaceMasker:
    return FaceMasker(PrivacyConfig(enabled=True))


@pytest.fixture(scope="module", params=[1, 3], ids=["detect-every-frame", "detect-every-3rd"])
def masked(
    request: pytest.FixtureRequest,
    packets: list[EncodedPacket],
    masker: FaceMasker,
    tmp_path_factory: pytest.TempPathFactory,
) -> Path:
    target = tmp_path_factory.mktemp("masked") / "clip.mp4"
    mask_to_mp4(packets, target, functools.partial(masker.mask_clip, detect_every=request.param))
    return target


def assert_faces_hidden(clip: Decoded, originals: Decoded, faces: list[list[Box]]) -> None:
    """Every face (as found on the original frame) has lost its detail; outside the faces
    and the blur's margin the picture is the original's but for the encoding."""
    assert len(clip) == len(originals)
    for (_, shown), (_, original), boxes in zip(clip, originals, faces, strict=True):
        elsewhere = np.ones(original.shape[:2], bool)
        for box in boxes:
            x1, y1, x2, y2 = pixels(box, original)
            assert detail(shown[y1:y2, x1:x2]) < detail(original[y1:y2, x1:x2]) / 20
            x1, y1, x2, y2 = pixels(box, original, grow=MARGIN)
            elsewhere[y1:y2, x1:x2] = False
        assert psnr(shown, original, elsewhere) > 30.0


def test_the_masked_clip_is_h264_with_the_source_frames_and_timing(
    masked: Path, packets: list[EncodedPacket], originals: Decoded, tmp_path: Path
) -> None:
    copy = tmp_path / "copy.mp4"
    remux_to_mp4(packets, copy)
    with av.open(str(masked)) as clip, av.open(str(copy)) as plain:
        video = clip.streams.video[0]
        assert video.codec_context.name == "h264"
        assert (video.codec_context.width, video.codec_context.height) == (176, 144)
        first = next(p for p in clip.demux(video) if p.size)
        assert first.is_keyframe
        duration, copy_duration = (float(c.duration or 0) / av.time_base for c in (clip, plain))
    frame_s = 1001 / 30000
    assert duration == pytest.approx(copy_duration, abs=frame_s)
    times = [at for at, _ in decode(masked)]
    assert times == pytest.approx([at for at, _ in originals], abs=frame_s / 2)  # frame by frame
    assert [at for at, _ in decode(copy)] == pytest.approx(times, abs=frame_s / 2)


def test_every_face_in_the_masked_clip_loses_its_detail_and_nothing_else_changes(
    masked: Path, originals: Decoded, faces: list[list[Box]]
) -> None:
    assert_faces_hidden(decode(masked), originals, faces)


def test_the_unmasked_copy_shows_the_face(
    packets: list[EncodedPacket], originals: Decoded, faces: list[list[Box]], tmp_path: Path
) -> None:
    """The check above on a stream copy: it fails, so it can tell a masked clip."""
    copy = tmp_path / "copy.mp4"
    remux_to_mp4(packets, copy)
    with pytest.raises(AssertionError):
        assert_faces_hidden(decode(copy), originals, faces)


def test_an_h265_camera_clip_is_masked_to_h264(
    carphone_mp4: Path, faces: list[list[Box]], masker: FaceMasker, tmp_path: Path
) -> None:
    """A camera's H.265 stream, decoded and masked all the same (the faces are those of the
    original frames: the H.265 copy shows them at the same places)."""
    source = encode(carphone_mp4, tmp_path / "carphone-h265.mp4", codec="libx265")
    packets = camera_packets(source)
    assert packets[0].stream.codec == "hevc"
    target = tmp_path / "clip.mp4"
    mask_to_mp4(packets, target, functools.partial(masker.mask_clip, detect_every=1))
    with opened(target) as clip:
        assert clip.streams.video[0].codec_context.name == "h264"
    source_keys, keys = (
        {index for index, packet in enumerate(camera_packets(path)) if packet.is_keyframe}
        for path in (source, target)
    )
    assert len(source_keys) == 6 and source_keys <= keys  # one every 20 frames: seekable alike
    assert_faces_hidden(decode(target), decode(source), faces)


@pytest.mark.integration
def test_the_recorder_stores_masked_clips_of_private_cameras_only(
    object_store: ObjectStore,
    packets: list[EncodedPacket],
    originals: Decoded,
    faces: list[list[Box]],
    tmp_path: Path,
) -> None:
    """Two cameras see the same face; only the private one's stored clip hides it, and the
    other's is the stream copy, packet for packet and byte for byte."""
    rings = {"private": PacketRing(60), "public": PacketRing(60)}
    for ring in rings.values():
        for packet in packets:
            ring.append(packet)
    index = EventIndex.connect(f"sqlite:///{tmp_path / 'index.db'}")
    clips = ClipConfig(pre_roll_s=0.0, post_roll_s=0.0)
    masks = FaceMasks()  # the public camera has no mask: its privacy is off
    private = {"private": PrivacyConfig(enabled=True), "public": PrivacyConfig()}
    clip_masks = {i: mask for i, c in private.items() if (mask := masks.clip(c)) is not None}
    recorder = UploadingRecorder(
        index, object_store, rings, clips, tmp_path / "work", clip_masks=clip_masks
    )
    recorder.start()
    end = packets[-1].wall_time
    events = {
        camera: person_event(
            camera_id=camera, site="lab", zone="car", started_at=START, last_seen_at=end
        )
        for camera in rings
    }
    for event in events.values():
        recorder.event_started(event)
        recorder.event_ended(dataclasses.replace(event, ended_at=end))
    recorder.stop()

    stored = {}
    for camera, event in events.items():
        row = index.get_event(event.id)
        assert row is not None and row.clip_key is not None and row.clip_error is None
        data = object_store.read(row.clip_key)
        head = object_store.client.stat_object(object_store.bucket, row.clip_key)
        assert head.size == len(data) and head.metadata is not None
        digest = hashlib.sha256(data).hexdigest()
        assert row.clip_sha256 == head.metadata[f"x-amz-meta-{SHA256_META}"] == digest
        stored[camera] = data

    copy = tmp_path / "copy.mp4"
    remux_to_mp4(packets, copy)
    assert stored["public"] == copy.read_bytes()
    assert demuxed(stored["public"]) == [packet.data for packet in packets]
    assert_faces_hidden(decode(stored["private"]), originals, faces)


@pytest.fixture(scope="module")
def carphone_camera(carphone_mp4: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """carphone as a camera sends it: H.264 without B-frames, a keyframe every second."""
    return encode(carphone_mp4, tmp_path_factory.mktemp("camera") / "carphone.mp4", gop=30)


def matched(clip: Decoded, originals: Decoded) -> list[int]:
    """For each frame of `clip`, the original it shows: the one it differs least from."""
    stack = np.stack([picture for _, picture in originals]).astype(np.int16)
    return [
        int(np.argmin(np.abs(stack - picture.astype(np.int16)).mean(axis=(1, 2, 3))))
        for _, picture in clip
    ]


@pytest.mark.integration
def test_a_private_camera_clip_from_the_running_pipeline_hides_the_face(
    carphone_camera: Path, tmp_path: Path
) -> None:
    """RTSP camera -> `xueliang run` -> SeaweedFS: the camera drops out, and the clip of its
    video-loss event, served by the API, shows the face blurred in every frame."""
    camera = RtspCamera({"driver": carphone_camera})
    camera.start()
    config = pipeline_config(
        tmp_path,
        cameras=[
            {
                "id": "driver",
                "site": "lab",
                "url": camera.url("driver"),
                "privacy": {"enabled": True},
            }
        ],
        analytics={"events": {"end_after_s": 1, "max_duration_s": 20}},
        clips={"pre_roll_s": 2, "post_roll_s": 1},
        ingest={"watchdog_s": 2, "reconnect_min_s": 0.5, "reconnect_max_s": 1, "heartbeat_s": 1},
    )
    try:
        with running(Pipeline(tmp_path, config)) as pipeline:
            pipeline.wait_for("/api/cameras", lambda cams: cams[0]["state"] == "online", 30)
            time.sleep(3)  # a pre-roll's worth of packets in the ring
            camera.kill()
            pipeline.wait_for("/api/cameras", lambda cams: cams[0]["state"] == "offline", 30)
            camera.start()
            loss = pipeline.wait_for(
                "/api/events?type=video_loss",
                lambda body: next((e for e in body["items"] if e["has_clip"]), None),
                timeout=30,
            )
            clip = pipeline.get(f"/api/events/{loss['id']}/clip", timeout=30).content
    finally:
        camera.stop()
    assert loss["clip_sha256"] == hashlib.sha256(clip).hexdigest()
    with opened(clip) as container:
        assert container.streams.video[0].codec_context.name == "h264"
    originals = decode(carphone_camera)
    detector = FaceDetector(PrivacyConfig(enabled=True))
    frames = decode(clip)
    assert len(frames) >= 30  # at least a second before the camera dropped
    shown = [originals[i] for i in matched(frames, originals)]
    faces = [[face.box for face in detector.detect(picture)] for _, picture in shown]
    assert all(len(boxes) == 1 for boxes in faces)
    assert_faces_hidden(frames, shown, faces)


@pytest.mark.integration
def test_a_long_masked_clip_does_not_delay_new_events(
    object_store: ObjectStore,
    packets: list[EncodedPacket],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """While a private camera's clip is being masked (held here until released), an event
    that starts meanwhile is in the index at once, and the held clip is stored afterwards."""
    masking, release = threading.Event(), threading.Event()

    def held(*args: Any, **kwargs: Any) -> None:
        masking.set()
        release.wait(30)
        mask_to_mp4(*args, **kwargs)

    monkeypatch.setattr(storage.media.event_clips, "mask_to_mp4", held)
    ring = PacketRing(60)
    for packet in packets:
        ring.append(packet)
    index = EventIndex.connect(f"sqlite:///{tmp_path / 'index.db'}")
    clips = ClipConfig(pre_roll_s=0.0, post_roll_s=0.0)
    mask = FaceMasks().clip(PrivacyConfig(enabled=True))
    assert mask is not None
    recorder = UploadingRecorder(
        index,
        object_store,
        {"private": ring},
        clips,
        tmp_path / "work",
        clip_masks={"private": mask},
    )
    recorder.start()
    try:
        end = packets[-1].wall_time
        first = person_event(
            camera_id="private", site="lab", zone="car", started_at=START, last_seen_at=end
        )
        recorder.event_started(first)
        recorder.event_ended(dataclasses.replace(first, ended_at=end))
        assert masking.wait(10)
        second = person_event(camera_id="private", site="lab", zone="car", started_at=end)
        recorder.event_started(second)
        deadline = time.monotonic() + 5
        while index.get_event(second.id) is None and time.monotonic() < deadline:
            time.sleep(0.05)
        row = index.get_event(second.id)
        assert row is not None and row.state == "active"
        assert index.get_event(first.id) is not None  # indexed, its clip not yet
    finally:
        release.set()
        recorder.stop()
    row = index.get_event(first.id)
    assert row is not None and row.clip_key is not None and row.clip_error is None
