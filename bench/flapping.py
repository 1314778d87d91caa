"""A flapping camera for a long time: does ingest leak file descriptors, threads or memory?

The GStreamer RTSP camera is killed and restarted every few seconds (and now and then only
frozen with SIGSTOP, so the stall watchdog has to act) while a `Camera` keeps reconnecting.
Prints one JSON line: open file descriptors, threads and RSS of this process before (after
a warm-up) and after, and how many reconnects happened.

Usage: .venv/bin/python bench/flapping.py [--minutes 30] [--period 6] [--warm-up 10] [--smoke]
"""

from __future__ import annotations

import argparse
import gc
import json
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil
from smoke import parse_arguments

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ingest.camera import Camera
from ingest.config import CameraConfig, IngestConfig
from ingest.ring import PacketRing
from tests.servers import CHECKOUT, RtspCamera
from xueliang.samples import encode_h264


def usage(process: psutil.Process) -> dict[str, int]:
    gc.collect()
    return {
        "fds": process.num_fds(),
        "threads": threading.active_count(),
        "rss_kib": process.memory_info().rss // 1024,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--period", type=float, default=6.0, help="seconds up, then down")
    parser.add_argument("--warm-up", type=float, default=10.0, help="seconds before measuring")
    args = parse_arguments(parser, minutes=0.1, period=2.0, warm_up=3.0)
    me = psutil.Process()
    with tempfile.TemporaryDirectory() as scratch:
        footage = encode_h264(CHECKOUT / "data" / "samples" / "vtest.avi", Path(scratch) / "v.mp4")
        server = RtspCamera({"cam": footage})
        server.start()
        settings = IngestConfig(watchdog_s=2, reconnect_min_s=0.2, reconnect_max_s=1)
        frames = [0]

        def count(_frame: object) -> None:
            frames[0] += 1

        camera = Camera(
            CameraConfig(id="flap", site="bench", url=server.url("cam")),
            settings, PacketRing(20), count,
        )  # fmt: skip
        camera.start()
        time.sleep(args.warm_up)  # first connection, codec and thread pools allocated
        before = usage(me)
        deadline = time.monotonic() + args.minutes * 60
        cycles = 0
        rss_by_quarter: list[int] = []
        quarter = args.minutes * 60 / 4
        next_quarter = time.monotonic() + quarter
        while time.monotonic() < deadline:
            if time.monotonic() >= next_quarter:  # does memory keep growing, or level off?
                rss_by_quarter.append(usage(me)["rss_kib"])
                next_quarter += quarter
            cycles += 1
            assert server.process is not None
            if cycles % 4 == 0:  # a frozen server: the socket stays open, data stops
                server.process.send_signal(signal.SIGSTOP)
                time.sleep(args.period / 2)
                server.process.send_signal(signal.SIGCONT)
                server.stop()
            else:
                server.kill()
                time.sleep(args.period / 2)
            server.start()
            time.sleep(args.period / 2)
        time.sleep(min(5.0, args.warm_up))  # the last restart is connected again
        health = camera.check()
        after = usage(me)
        camera.stop()
        camera.join()
        server.stop()
    print(
        json.dumps(
            {
                "bench": "flapping",
                "minutes": args.minutes,
                "outages": cycles,
                "reconnects": health.reconnects,
                "state_at_end": health.state,
                "frames": frames[0],
                "before": before,
                "after": after,
                "rss_kib_by_quarter": rss_by_quarter,
            }
        )
    )


if __name__ == "__main__":
    main()
