"""End to end on real parts: GStreamer RTSP camera -> pipeline -> SeaweedFS S3 -> API."""

from __future__ import annotations

import hashlib
import io
import itertools
import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import av
import cv2
import httpx
import numpy as np
import pytest

from analytics.config import SsdOnnxDetectorConfig
from analytics.detectors import create_detector
from tests.apiclient import Receiver, verified
from tests.media import decode_jpeg
from tests.servers import Pipeline, RtspCamera, pipeline_config

pytestmark = pytest.mark.integration

USER, PASSWORD = "operator", "Pa55-w0rd-XL"
# The west end of the walkway: empty for the first ~18 s of vtest, then crossed by walkers.
WEST_WALKWAY = [[0.0, 0.3], [0.3, 0.3], [0.3, 0.6], [0.0, 0.55]]
PRE_ROLL, POST_ROLL, GOP_S = 3.0, 3.0, 2.0
WATCHDOG_S, HEARTBEAT_S = 3.0, 1.0
RECORDING_SEGMENT_S = 4.0


@pytest.fixture(scope="module")
def camera(vtest_h264: Path) -> Iterator[RtspCamera]:
    server = RtspCamera({"walkway": vtest_h264}, user=USER, password=PASSWORD)
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def pipeline(camera: RtspCamera, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pipeline]:
    workdir = tmp_path_factory.mktemp("pipeline")
    config = pipeline_config(
        workdir,
        cameras=[
            {
                "id": "walkway",
                "name": "Walkway",
                "site": "campus",
                "url": camera.url("walkway", with_credentials=True),
                "zones": [{"name": "west", "points": WEST_WALKWAY}],  # default rule: intrusion
                "recording": {"enabled": True, "segment_s": RECORDING_SEGMENT_S},
            }
        ],
        analytics={"events": {"end_after_s": 2, "max_duration_s": 20}},
        clips={"pre_roll_s": PRE_ROLL, "post_roll_s": POST_ROLL},
        ingest={
            "watchdog_s": WATCHDOG_S,
            "reconnect_min_s": 0.5,
            "reconnect_max_s": 2,
            "heartbeat_s": HEARTBEAT_S,
            "ring_s": 60,
        },
    )
    runner = Pipeline(workdir, config)
    runner.start()
    yield runner
    runner.stop()


def when(value: str) -> float:
    return datetime.fromisoformat(value).timestamp()


def first_event(body: dict[str, Any]) -> dict[str, Any] | None:
    items = body["items"]
    return items[-1] if items else None


def stored_event(body: dict[str, Any]) -> dict[str, Any] | None:
    done = [e for e in body["items"] if e["has_clip"]]
    return done[-1] if done else None


def test_intrusion_event_with_clip_and_snapshot(pipeline: Pipeline) -> None:
    event = pipeline.wait_for("/api/events", first_event, timeout=60)  # raises after 60 s
    assert event["type"] == "zone_intrusion" and event["label"] == "person"
    assert (event["camera_id"], event["site"], event["zone"]) == ("walkway", "campus", "west")
    assert (event["alarm_method"], event["alarm_type"]) == (5, 6)  # GB/T 28181: intrusion

    event = pipeline.wait_for("/api/events?camera=walkway", stored_event, timeout=90)
    assert event["state"] == "ended" and event["clip_sha256"]

    client, bucket = pipeline.s3()
    objects = {
        o.object_name: o for o in client.list_objects(bucket, "campus/walkway/", recursive=True)
    }
    day = datetime.fromisoformat(event["started_at"]).strftime("%Y/%m/%d")
    key = f"campus/walkway/{day}/{event['id']}.mp4"
    assert key in objects
    clip = client.get_object(bucket, key).read()
    head = client.stat_object(bucket, key)
    assert head.content_type == "video/mp4"
    assert head.metadata is not None
    assert head.metadata["x-amz-meta-sha256"] == hashlib.sha256(clip).hexdigest()
    assert event["clip_sha256"] == hashlib.sha256(clip).hexdigest()

    served = pipeline.get(f"/api/events/{event['id']}/clip", timeout=30)
    assert served.status_code == 200 and served.content == clip

    with av.open(io.BytesIO(clip), "r") as container:
        video = container.streams.video[0]
        assert video.codec_context.name == "h264"
        first = next(p for p in container.demux(video) if p.size)
        assert first.is_keyframe
    with av.open(io.BytesIO(clip), "r") as container:
        decoded = sum(1 for _ in container.decode(video=0))
        length = float(container.duration or 0) / av.time_base
    assert decoded > 0
    wanted = (when(event["ended_at"]) + POST_ROLL) - (when(event["started_at"]) - PRE_ROLL)
    # The clip starts at the keyframe at or before the pre-roll: at most one GOP longer.
    assert wanted - 0.5 <= length <= wanted + GOP_S + 0.5
    assert when(event["clip_start"]) <= when(event["started_at"]) - PRE_ROLL + 0.2

    snapshot = pipeline.get(f"/api/events/{event['id']}/snapshot", timeout=30)
    assert snapshot.status_code == 200
    assert snapshot.headers["content-type"] == "image/jpeg"
    picture = decode_jpeg(snapshot.content)
    assert picture.shape == (480, 640, 3)  # the default detect size of a 768x576 camera
    height, width = picture.shape[:2]
    x1, y1, x2, y2 = event["box"]
    top = picture[max(0, round(y1 * height) - 3), round(x1 * width) : round(x2 * width)]
    assert (top[:, 2] > 180).mean() > 0.8, "the detection is outlined in red"
    # Look again at the object's surroundings (one box-size around it), as a reviewer would.
    w, h = x2 - x1, y2 - y1
    left, top_y = max(0, round((x1 - w) * width)), max(0, round((y1 - h / 2) * height))
    crop = picture[top_y : round((y2 + h / 2) * height), left : round((x2 + w) * width)]
    people = create_detector(SsdOnnxDetectorConfig(min_score=0.3)).detect(crop)
    centre = ((x1 + x2) / 2 * width - left) / crop.shape[1]
    overlapping = [p for p in people if p.box.x1 < centre < p.box.x2]
    assert overlapping, "the snapshot does not show the detected person"


def video_loss(body: dict[str, Any]) -> dict[str, Any] | None:
    ended = [e for e in body["items"] if e["type"] == "video_loss" and e["has_clip"]]
    return ended[0] if ended else None


def test_continuous_recording_exports_any_range(pipeline: Pipeline) -> None:
    """The camera is recorded in segments of 4 s all along; a range across three of them,
    exported over the API, plays with every frame 0.1 s after the one before."""
    since = time.time() + 0.5
    until = since + 2.5 * RECORDING_SEGMENT_S
    time.sleep(max(0.0, until + RECORDING_SEGMENT_S + 3 - time.time()))  # cut and uploaded
    params = {
        "start": datetime.fromtimestamp(since, UTC).isoformat(),
        "end": datetime.fromtimestamp(until, UTC).isoformat(),
    }
    deadline = time.monotonic() + 30
    while True:
        served = pipeline.get("/api/cameras/walkway/recording", params=params, timeout=30)
        if served.status_code == 200 or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert served.status_code == 200, served.text
    with av.open(io.BytesIO(served.content), "r") as container:
        times = [float(f.time) for f in container.decode(video=0) if f.time is not None]
    assert times[-1] - times[0] >= until - since - 2.5  # from the keyframe before `since`
    steps = [b - a for a, b in itertools.pairwise(times)]
    assert all(abs(step - 0.1) < 0.01 for step in steps), steps  # no gap, no repeat


def test_camera_goes_offline_and_comes_back(pipeline: Pipeline, camera: RtspCamera) -> None:
    pipeline.wait_for("/api/cameras", lambda cams: cams[0]["state"] == "online", timeout=30)
    camera.kill()
    killed, killed_at = time.monotonic(), time.time()
    pipeline.wait_for("/api/cameras", lambda cams: cams[0]["state"] == "offline", timeout=30)
    assert time.monotonic() - killed <= WATCHDOG_S + 2 * HEARTBEAT_S + 1.0
    time.sleep(3)
    restarted_at = time.time()
    camera.start()
    cams = pipeline.wait_for(
        "/api/cameras", lambda cams: cams if cams[0]["state"] == "online" else None, timeout=30
    )
    back_at = time.time()
    assert cams[0]["reconnects"] >= 1 and cams[0]["input_fps"] > 0
    # the outage was logged with the camera's URL, its credentials masked
    assert f"rtsp://***@127.0.0.1:{camera.port}/walkway" in pipeline.log()

    # ... and is an event: from the last packet before the kill to the first after the restart
    loss = pipeline.wait_for("/api/events?type=video_loss", video_loss, timeout=30)
    assert killed_at - 1.5 <= when(loss["started_at"]) <= killed_at + 0.2
    assert restarted_at <= when(loss["ended_at"]) <= back_at
    assert (loss["alarm_method"], loss["alarm_type"]) == (2, 1)  # GB/T 28181: video loss
    # Its clip holds one side of the gap only: no frames glued across it.
    clip = pipeline.get(f"/api/events/{loss['id']}/clip", timeout=30).content
    with av.open(io.BytesIO(clip), "r") as container:
        times = [float(f.time) for f in container.decode(video=0) if f.time is not None]
    assert len(times) > 10
    assert max(b - a for a, b in itertools.pairwise(times)) < 1.0


def test_a_camera_added_over_the_api_streams_within_the_lease_time(
    pipeline: Pipeline, camera: RtspCamera
) -> None:
    api, admin = pipeline.api, pipeline.headers
    lease_s = 10.0  # ingest.lease_s's default: the workers read the cameras every third of it
    assert httpx.put(f"{api}/api/sites/campus", json={"name": "Campus"}, headers=admin).is_success
    made = httpx.post(
        f"{api}/api/keys", json={"name": "installer 3", "role": "installer", "sites": ["campus"]},
        headers=admin,
    )  # fmt: skip
    installer = {"Authorization": f"Bearer {made.json()['key']}"}
    body = {
        "id": "walkway-api", "site": "campus", "url": camera.url("walkway"),
        "username": USER, "password": PASSWORD,
    }  # fmt: skip
    added_at = time.monotonic()
    added = httpx.post(f"{api}/api/cameras", json=body, headers=installer, timeout=10)
    assert added.status_code == 201, added.text

    def online(cameras: list[dict[str, Any]]) -> dict[str, Any] | None:
        """The camera streaming: online, with packets coming in (its first heartbeat may
        report no frame rate yet)."""
        found = (
            c for c in cameras
            if c["id"] == "walkway-api" and c["state"] == "online" and c["input_fps"] > 0
        )  # fmt: skip
        return next(found, None)

    seen = pipeline.wait_for("/api/cameras", online, timeout=lease_s + 20)
    assert time.monotonic() - added_at <= lease_s + 5, "not streaming within the lease time"
    assert seen["source"] == "api"
    answers = [added.text, httpx.get(f"{api}/api/cameras/walkway-api", headers=installer).text]
    # The workers logged in with the password, yet the index's files never held it as such.
    database = sorted((pipeline.workdir / "data").glob("xueliang.db*"))
    assert database and all(PASSWORD.encode() not in path.read_bytes() for path in database)
    assert httpx.delete(f"{api}/api/cameras/walkway-api", headers=installer).status_code == 204
    deadline = time.monotonic() + lease_s
    while "gave up camera walkway-api" not in pipeline.log() and time.monotonic() < deadline:
        time.sleep(0.5)
    assert "gave up camera walkway-api" in pipeline.log()
    for text in [*answers, pipeline.log()]:
        assert PASSWORD not in text


def test_a_shop_alarm_gets_a_clip_from_before_it_and_a_webhook_with_its_url(
    pipeline: Pipeline,
) -> None:
    """A panel reports a burglary: the clip runs from 30 s before the alarm time to the
    post-alarm window after it, and the shop's receiver gets a signed webhook with its link."""
    api, admin = pipeline.api, pipeline.headers
    pre_s, post_s = 30.0, 4.0
    assert httpx.put(f"{api}/api/sites/campus", json={"name": "Campus"}, headers=admin).is_success
    panel = {
        "account": "C0DE", "zones": {"3": ["walkway"]}, "pre_alarm_s": pre_s,
        "post_alarm_s": post_s, "gated_types": [],
    }  # fmt: skip
    made = httpx.put(f"{api}/api/sites/campus/alarm-panel", json=panel, headers=admin)
    assert made.status_code == 200, made.text
    key = httpx.post(
        f"{api}/api/keys", json={"name": "campus shop", "role": "shop", "sites": ["campus"]},
        headers=admin,
    ).json()["key"]  # fmt: skip
    shop = {"Authorization": f"Bearer {key}"}
    receiver = Receiver()
    try:
        hook = httpx.post(
            f"{api}/api/webhooks",
            json={"name": "panel", "url": receiver.url, "types": ["alarm_panel"],
                  "changes": ["clip"], "sites": ["campus"]},
            headers=shop,
        ).json()  # fmt: skip
        time.sleep(pre_s + 5)  # the ring holds the pre-alarm window even after a reconnection
        alarm_at = time.time()
        raised = httpx.post(
            f"{api}/api/alarms",
            json={"account": "C0DE", "zone": "3", "code": 130,
                  "time": datetime.fromtimestamp(alarm_at, UTC).isoformat()},
            headers=shop,
        )  # fmt: skip
        assert raised.status_code == 202, raised.text
        event_id = raised.json()["events"][0]["id"]
        deadline = time.monotonic() + post_s + 40
        while not receiver.requests and time.monotonic() < deadline:
            time.sleep(0.5)
        assert receiver.requests, pipeline.log()[-3000:]
        headers, body = receiver.requests[0]
        assert verified(hook["secret"], headers, body)
        delivered = json.loads(body)
        assert delivered["type"] == "event.clip" and delivered["event"]["id"] == event_id
        event = delivered["event"]
        first, last = when(event["clip_start"]), when(event["clip_end"])
        assert first <= alarm_at - pre_s  # from the keyframe at or before the window's start
        assert first > alarm_at - pre_s - GOP_S - 0.5
        assert last >= alarm_at + post_s - 0.5
        clip = httpx.get(delivered["media"]["clip"], timeout=30).content  # the presigned link
        with av.open(io.BytesIO(clip), "r") as container:
            times = [float(f.time) for f in container.decode(video=0) if f.time is not None]
        assert times[-1] - times[0] == pytest.approx(last - first, abs=0.25)
    finally:
        receiver.close()


def test_the_camera_grid_gets_a_fresh_picture(pipeline: Pipeline) -> None:
    deadline = time.monotonic() + 30
    while (answer := pipeline.get("/api/cameras/walkway/picture")).status_code != 200:
        assert time.monotonic() < deadline, answer.text
        time.sleep(1)
    picture = cv2.imdecode(np.frombuffer(answer.content, np.uint8), cv2.IMREAD_COLOR)
    assert picture is not None and picture.shape[1] == 480 and picture.std() > 20
    assert time.time() - when(answer.headers["x-taken-at"]) < 35  # refreshed every 10 s


def test_camera_password_is_never_shown(pipeline: Pipeline) -> None:
    answers = [
        pipeline.get(path, timeout=10).text
        for path in ("/api/cameras", "/api/events", "/openapi.json")
    ]
    cameras = pipeline.get("/api/cameras", timeout=10).json()
    assert cameras[0]["url"].startswith("rtsp://127.0.0.1:")
    for text in [*answers, pipeline.log()]:
        assert PASSWORD not in text
        assert f"{USER}:" not in text
