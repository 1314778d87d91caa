"""What the packet journal costs a worker, against FFmpeg's segment muxer on the same stream.

The journal (storage/media/journal.py) writes each camera's closed GOPs to disk by stream copy
so that a worker taking the camera over after a crash can cut the orphaned events' clips. This
feeds `seconds` of a 1080p25 H.264 camera stream (vtest.avi re-timed, GOP 2 s, ~4 Mbit/s) into a
packet ring as a worker does, polls the journal's cutter once a second of stream, and writes
each GOP as the journal does; CPU seconds (user + sys of this process) per second of stream is
`ours_cpu_per_stream_s` (the share of a core one camera's journal takes). The native tool is
`ffmpeg -c copy -f segment -segment_time 2` on the same file (`native_cpu_per_stream_s`, its
start-up taken off: the same command on one GOP). `ratio` = ours / native. Medians of
`--repetitions`; `bytes_per_stream_s` is what the disk takes per camera.

Usage: .venv/bin/python bench/journal.py [--seconds 60] [--repetitions 3] [--smoke]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from decode import encode_camera
from smoke import parse_arguments

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ingest.ring import EncodedPacket, PacketRing
from storage.media.continuous import SegmentCutter
from storage.media.journal import GOP_S, PacketJournal
from tests.media import camera_packets

FPS = 25


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def children_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def ours(packets: list[EncodedPacket], work: Path) -> tuple[float, int]:
    """CPU seconds to journal the packets as a worker does, and the bytes left on disk."""
    journal = PacketJournal(work, keep_s=1e9, max_bytes=1 << 40)
    ring = PacketRing(max_seconds=120)
    cutter = SegmentCutter("bench", ring, GOP_S)
    started = cpu_seconds()
    for number, packet in enumerate(packets, start=1):
        ring.append(packet)
        if number % FPS == 0:  # the journal's loop polls once a second
            journal.keep("bench", cutter.poll())
    spent = cpu_seconds() - started
    written = sum(row.size for row in journal.rows("bench"))
    journal.forget("bench")
    return spent, written


def native(source: Path, work: Path, frames: int | None = None) -> float:
    """CPU seconds of ffmpeg's segment muxer copying `source` (its first `frames`)."""
    work.mkdir(parents=True, exist_ok=True)
    limit = ["-frames:v", str(frames)] if frames else []
    command = ["ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "error", "-y", "-i", str(source),
               *limit, "-c", "copy", "-f", "segment", "-segment_time", str(GOP_S),
               "-reset_timestamps", "1", str(work / "%05d.mp4")]  # fmt: skip
    before = children_cpu_seconds()
    subprocess.run(command, check=True)
    return children_cpu_seconds() - before


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=int, default=60, help="of 1080p25 stream")
    parser.add_argument("--repetitions", type=int, default=3)
    arguments = parse_arguments(parser, seconds=6, repetitions=1)
    with tempfile.TemporaryDirectory(prefix="bench-journal-") as scratch:
        work = Path(scratch)
        source = encode_camera(work / "camera.mp4", 1920, 1080, arguments.seconds * FPS, loops=2)
        packets = camera_packets(source)  # as a stream worker puts them in its ring
        stream_s = len(packets) / FPS
        runs = [ours(packets, work / f"ours-{n}") for n in range(arguments.repetitions)]
        start_up = statistics.median(
            native(source, work / f"first-{n}", frames=1) for n in range(arguments.repetitions)
        )
        theirs = statistics.median(
            native(source, work / f"native-{n}") for n in range(arguments.repetitions)
        )
        ours_s = statistics.median(spent for spent, _ in runs) / stream_s
        native_s = max(theirs - start_up, 1e-6) / stream_s
        print(json.dumps({
            "stream_s": round(stream_s, 1),
            "repetitions": arguments.repetitions,
            "ours_cpu_per_stream_s": round(ours_s, 5),
            "native_cpu_per_stream_s": round(native_s, 5),
            "ratio": round(ours_s / native_s, 2),
            "bytes_per_stream_s": round(runs[0][1] / stream_s),
            "cpus": os.cpu_count(),
            "at": time.strftime("%Y-%m-%dT%H:%M:%S"),
        }))  # fmt: skip


if __name__ == "__main__":
    main()
