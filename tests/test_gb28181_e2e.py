"""GB/T 28181 end to end on real parts: a simulated 4-channel NVR (its video muxed by GStreamer's
`mpegpsmux`) registers to `xueliang run` (supervisor, SIP service, worker, API, SeaweedFS S3),
an installer approves it, its catalog's channels become cameras, one enabled with a zone
streams over RTP and raises an event whose clip is in S3; when the NVR goes silent the
channel's video is lost (an event) and the reason named."""

from __future__ import annotations

import io
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import av
import httpx
import pytest

from tests.gb_device import Channel, GbDevice, mux_ps
from tests.servers import Pipeline, free_port, pipeline_config
from tests.test_e2e import WEST_WALKWAY, stored_event

pytestmark = pytest.mark.integration
NVR, PASSWORD = "34020000001180000007", "nvr-Pa55"
CHANNELS = [f"3402000000132000000{n}" for n in range(1, 5)]
CAMERA = f"{NVR}-{CHANNELS[0]}"


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pipeline]:
    workdir = tmp_path_factory.mktemp("gb-pipeline")
    config = pipeline_config(
        workdir,
        cameras=[],
        gb28181={
            "enabled": True,
            "host": "127.0.0.1",
            "port": free_port(),
            "password": PASSWORD,
            "keepalive_s": 1,
            "keepalive_misses": 3,
        },
        analytics={"events": {"end_after_s": 2, "max_duration_s": 20}},
        clips={"pre_roll_s": 3, "post_roll_s": 3},
        ingest={
            "watchdog_s": 3,
            "reconnect_min_s": 0.5,
            "reconnect_max_s": 2,
            "heartbeat_s": 1,
            "ring_s": 60,
            "lease_s": 6,
        },
    )
    runner = Pipeline(workdir, config)
    runner.start()
    yield runner
    runner.stop()


@pytest.fixture(scope="module")
def nvr(pipeline: Pipeline, vtest_h264: Path) -> Iterator[GbDevice]:
    video = mux_ps(vtest_h264, pipeline.workdir / "vtest.ps")
    channels = [Channel(c, f"通道{n}", NVR) for n, c in enumerate(CHANNELS, 1)]
    device = GbDevice(NVR, PASSWORD, ("127.0.0.1", pipeline.config["gb28181"]["port"]),
                      channels, video=video)  # fmt: skip
    yield device
    device.close()


def test_an_nvr_is_approved_and_its_channel_raises_an_event_with_a_clip(
    pipeline: Pipeline, nvr: GbDevice
) -> None:
    api, admin = pipeline.api, pipeline.headers
    assert httpx.put(f"{api}/api/sites/campus", json={"name": "Campus"}, headers=admin).is_success
    deadline = time.monotonic() + 30
    while (code := nvr.register()) != 200 and time.monotonic() < deadline:
        time.sleep(0.5)  # the SIP service may still be starting
    assert code == 200
    nvr.keep_alive_every(0.5)
    device = pipeline.wait_for(f"/api/gb28181/devices/{NVR}", lambda d: d, timeout=10)
    assert device["state"] == "pending" and device["online"]
    approved = httpx.post(f"{api}/api/gb28181/devices/{NVR}/approve",
                          json={"site": "campus", "name": "Gate NVR"}, headers=admin)  # fmt: skip
    assert approved.status_code == 200, approved.text

    def channel_cameras(cameras: list[dict[str, Any]]) -> list[dict[str, Any]]:
        found = [c for c in cameras if c["id"].startswith(f"{NVR}-")]
        return found if len(found) == len(CHANNELS) else []

    cameras = pipeline.wait_for("/api/cameras", channel_cameras, timeout=30)
    assert [(c["name"], c["site"], c["enabled"]) for c in cameras] == [
        (f"通道{n}", "campus", False) for n in range(1, 5)
    ]
    camera = {
        "id": CAMERA, "site": "campus", "name": "Gate", "url": f"gb28181://{NVR}/{CHANNELS[0]}",
        "transport": "udp", "zones": [{"name": "west", "points": WEST_WALKWAY}],
    }  # fmt: skip
    enabled = httpx.put(f"{api}/api/cameras/{CAMERA}", json=camera, headers=admin)
    assert enabled.status_code == 200, enabled.text

    def streaming(cameras: list[dict[str, Any]]) -> dict[str, Any] | None:
        return next((c for c in cameras if c["id"] == CAMERA and c["input_fps"] > 0), None)

    seen = pipeline.wait_for("/api/cameras", streaming, timeout=40)
    assert seen["state"] in ("online", "connecting") and seen["media_dropped"] == 0
    event = pipeline.wait_for(f"/api/events?camera={CAMERA}", stored_event, timeout=120)
    assert event["type"] == "zone_intrusion" and event["site"] == "campus"
    clip = pipeline.get(f"/api/events/{event['id']}/clip", timeout=30)
    assert clip.status_code == 200
    with av.open(io.BytesIO(clip.content), "r") as container:
        assert container.streams.video[0].codec_context.name == "h264"
        assert sum(1 for _ in container.decode(video=0)) > 30
    invites = [r for r in nvr.received if r.startswith("INVITE ")]
    assert invites and all(CHANNELS[0] in r.split("\r\n")[0] for r in invites)

    nvr.close()  # the NVR goes silent: keepalives and video stop
    loss = pipeline.wait_for(
        f"/api/events?camera={CAMERA}&type=video_loss", lambda b: b["items"], timeout=30
    )
    assert loss[0]["camera_id"] == CAMERA

    def offline(cameras: list[dict[str, Any]]) -> dict[str, Any] | None:
        return next((c for c in cameras if c["id"] == CAMERA and c["state"] == "offline"
                     and "device is offline" in (c["error"] or "")), None)  # fmt: skip

    pipeline.wait_for("/api/cameras", offline, timeout=30)
    device = pipeline.get(f"/api/gb28181/devices/{NVR}").json()
    assert not device["online"] and device["offline_reason"] == "keepalives missed"
