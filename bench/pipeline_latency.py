"""End-to-end figures of the pipeline on one RTSP camera (vtest.avi), as one JSON line.

- `event_to_api_s`: from the frame that started an event to the event being listed by the API
  (polled every 0.1 s), median over the events seen;
- `end_to_clip_s`: from an event's end to its clip being in S3 and indexed (includes the
  post-roll the clip has to wait for), median; `post_roll_s` is given alongside;
- `worker_cpu`: CPU-seconds per second of the worker process (all its threads), against
  `ffmpeg -threads 1` only decoding the same stream for the same time (`ffmpeg_decode_cpu`).

Usage: .venv/bin/python bench/pipeline_latency.py [--seconds 150] [--smoke]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import psutil
from smoke import parse_arguments

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.servers import CHECKOUT, Pipeline, RtspCamera, pipeline_config
from xueliang.samples import encode_h264

ZONE = [[0.0, 0.3], [0.3, 0.3], [0.3, 0.6], [0.0, 0.55]]
POST_ROLL_S = 3.0


def cpu_seconds(process: psutil.Process) -> float:
    times = process.cpu_times()
    return float(times.user + times.system)


def ffmpeg_decode_cpu(url: str, seconds: float) -> float:
    """CPU-seconds per second that `ffmpeg -threads 1` spends decoding the stream."""
    command = [
        "ffmpeg", "-loglevel", "error", "-threads", "1", "-rtsp_transport", "tcp", "-i", url,
        "-t", str(seconds), "-f", "null", "-",
    ]  # fmt: skip
    started = time.monotonic()
    process = psutil.Popen(command)
    used = 0.0
    while process.poll() is None:
        used = cpu_seconds(process)
        time.sleep(0.2)
    return used / (time.monotonic() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--seconds", type=float, default=150.0)
    args = parse_arguments(parser, seconds=6.0)
    with tempfile.TemporaryDirectory() as scratch:
        workdir = Path(scratch)
        footage = encode_h264(CHECKOUT / "data" / "samples" / "vtest.avi", workdir / "vtest.mp4")
        camera = RtspCamera({"walkway": footage})
        camera.start()
        config = pipeline_config(
            workdir,
            cameras=[
                {"id": "walkway", "site": "bench", "url": camera.url("walkway"),
                 "zones": [{"name": "west", "points": ZONE}]},
            ],
            analytics={"events": {"end_after_s": 2, "max_duration_s": 20}},
            clips={"pre_roll_s": 3, "post_roll_s": POST_ROLL_S},
            workers=1,  # the one worker's CPU is what is measured
        )  # fmt: skip
        pipeline = Pipeline(workdir, config)
        pipeline.start()
        try:
            assert pipeline.process is not None
            worker = next(
                p
                for p in psutil.Process(pipeline.process.pid).children(recursive=True)
                if "worker" in p.cmdline()
            )
            seen: dict[str, float] = {}
            stored: dict[str, float] = {}
            events: dict[str, dict[str, str]] = {}
            cpu_start, wall_start = cpu_seconds(worker), time.monotonic()
            while time.monotonic() - wall_start < args.seconds:
                listed = pipeline.get("/api/events?limit=200", timeout=5)
                listed.raise_for_status()  # not a KeyError on an error's body
                body = listed.json()
                now = time.time()
                for event in body["items"]:
                    events[event["id"]] = event
                    seen.setdefault(event["id"], now)
                    if event["has_clip"]:
                        stored.setdefault(event["id"], now)
                time.sleep(0.1)
            worker_cpu = (cpu_seconds(worker) - cpu_start) / (time.monotonic() - wall_start)
            native = ffmpeg_decode_cpu(camera.url("walkway"), min(30.0, args.seconds))
        finally:
            pipeline.stop()
            camera.stop()

    def started(event_id: str) -> float:
        return datetime.fromisoformat(events[event_id]["started_at"]).timestamp()

    def ended(event_id: str) -> float:
        return datetime.fromisoformat(events[event_id]["ended_at"]).timestamp()

    to_api = [seen[e] - started(e) for e in seen]
    to_clip = [stored[e] - ended(e) for e in stored if events[e]["ended_at"]]
    print(
        json.dumps(
            {
                "bench": "pipeline_latency",
                "seconds": args.seconds,
                "events": len(seen),
                "event_to_api_s_median": round(statistics.median(to_api), 3) if to_api else None,
                "clips": len(to_clip),
                "end_to_clip_s_median": round(statistics.median(to_clip), 3) if to_clip else None,
                "post_roll_s": POST_ROLL_S,
                "worker_cpu": round(worker_cpu, 3),
                "ffmpeg_decode_cpu": round(native, 3),
                "worker_to_ffmpeg_ratio": round(worker_cpu / native, 2) if native else None,
            }
        )
    )


if __name__ == "__main__":
    main()
