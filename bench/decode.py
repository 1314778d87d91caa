"""Decode throughput of the ingest path against `ffmpeg -threads 1 -i X -f null -`, one JSON line.

Inputs are made once per run: vtest.avi re-timed to 25 fps and encoded as a camera would send
it (H.264, libx264 veryfast, GOP 50, no B-frames) at 1920x1080 and at 640x360. For each, CPU
seconds (user + sys) are turned into frames per CPU-second, medians of a few repetitions:

- `ffmpeg`: `ffmpeg -threads 1 -i X -f null -`, less the fixed cost of starting ffmpeg and
  opening the file (the same command stopped after one frame), since our figures are taken
  inside a running process (`ffmpeg_raw` keeps it in);
- `ffmpeg_keyframes`: the same with `-skip_frame nokey`, per input frame;
- `pyav_bare`: a bare PyAV loop (`container.decode`, one thread), the library under our code;
- `ours_decode_only`: `ingest.stream.StreamReader` on a `file://` URL, `realtime: false`,
  decoding every frame without converting any (`Sampling(detect, on_frame=None)`);
- `ours_sampled`: the same, handing frames at the detect rate (5 fps), converted to BGR and
  scaled to 640 wide in swscale, to an `on_frame` that counts them;
- `ours_keyframes`: `detect.decode: keyframes`, with `on_frame`, per input frame.

All variants read the file with `realtime: false`: as fast as it decodes, each packet timed
at its own media time, so every fifth frame is converted, as for a live 25 fps camera detecting
at 5 fps (`sampled_frames` shows it). It is the production code throughout.

`ratio_*` = ours / ffmpeg (frames per CPU-second; 1.0 = as cheap as ffmpeg; goal >= 0.95).
The two decoders are different FFmpeg builds (Debian's and the one PyAV bundles), so
`pyav_bare` / `ffmpeg` shows the library difference and ours / `pyav_bare` our own overhead.

Usage: .venv/bin/python bench/decode.py [--repetitions 3] [--seconds 20] [--smoke]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import av
import av.video.stream
from smoke import parse_arguments

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from common.types import Frame
from ingest import stream
from ingest.config import CameraConfig, DetectConfig, IngestConfig
from ingest.ring import PacketRing

REPO = Path(__file__).resolve().parent.parent
VTEST = REPO / "data" / "samples" / "vtest.avi"
FPS = 25
DETECT_FPS = 5.0
DETECT_WIDTH = 640


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def ffmpeg(*args: str) -> list[str]:
    return ["ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "error", *args]


def encode_camera(target: Path, width: int, height: int, frames: int, loops: int = 0) -> Path:
    """vtest.avi re-timed to 25 fps (`loops` extra passes), as a camera's H.264 stream."""
    command = ffmpeg(
        "-y", "-stream_loop", str(loops), "-i", str(VTEST), "-an",
        "-vf", f"setpts=N/({FPS}*TB),scale={width}:{height}", "-r", str(FPS),
        "-frames:v", str(frames), "-c:v", "libx264", "-preset", "veryfast", "-crf", "23",
        "-g", "50", "-bf", "0", "-pix_fmt", "yuv420p", str(target),
    )  # fmt: skip
    subprocess.run(command, check=True)
    return target


def remux(source: Path, target: Path, *before_input: str) -> Path:
    """`source` copied (no re-encode) to `target`, with input options such as -stream_loop."""
    subprocess.run(
        ffmpeg("-y", *before_input, "-i", str(source), "-map", "0:v", "-c", "copy", str(target)),
        check=True,
    )
    return target


def child_cpu(command: list[str]) -> float:
    """CPU seconds (user + sys) the command's process used, from wait4."""
    process = subprocess.Popen(command, stdin=subprocess.DEVNULL)
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise RuntimeError(f"{command[0]} exited with {process.returncode}")
    return usage.ru_utime + usage.ru_stime


@dataclass(frozen=True, slots=True)
class ReaderRun:
    """What one StreamReader pass over a file cost and did."""

    cpu_s: float
    packets: int
    decoded: int
    sampled: int


def run_reader(
    path: Path,
    *,
    detect: DetectConfig | None = None,
    count_frames: bool = False,
    ring: bool = False,
) -> ReaderRun:
    """Read `path` once with the ingest code, to the end of the file, and measure the CPU time
    of this whole process meanwhile (the calling thread only waits)."""
    url = path.as_uri()
    camera = CameraConfig(
        id="bench", site="bench", url=url, realtime=False, loop=False,
        detect=detect or DetectConfig(),
    )  # fmt: skip
    settings = IngestConfig()
    sampled = 0

    def on_frame(frame: Frame) -> None:
        nonlocal sampled
        sampled += 1

    callback: Callable[[Frame], None] | None = on_frame if count_frames else None
    reader = stream.StreamReader(
        camera,
        url,
        settings,
        ring=PacketRing(settings.ring_s, settings.ring_max_bytes) if ring else None,
        sampling=stream.Sampling(camera.detect, callback) if detect is not None else None,
    )
    before = time.process_time()
    reader.start()
    reader.join(timeout=600)  # with loop: false it ends by itself at the end of the file
    used = time.process_time() - before
    if not reader.finished:
        raise RuntimeError(f"reader did not finish {path.name}")
    stats = reader.stats()
    if stats.reconnects or stats.decode_errors or stats.packets == 0:
        raise RuntimeError(f"reader did not read {path.name} cleanly: {stats}")
    return ReaderRun(used, stats.packets, stats.decoded_frames, sampled)


def pyav_bare(path: Path) -> float:
    """CPU seconds of a bare PyAV decode loop over `path` (one thread, no conversion)."""
    before = time.process_time()
    with av.open(str(path)) as container:
        video = container.streams.video[0]
        video.codec_context.thread_count = 1
        for _ in container.decode(video):
            pass
    return time.process_time() - before


def rate(frames: int, seconds: list[float]) -> float:
    """Frames per CPU-second from the median of the repetitions' CPU seconds."""
    return frames / statistics.median(seconds)


def measure_stream(path: Path, frames: int, repetitions: int) -> dict[str, float | int]:
    """All decode figures of one camera stream, interleaved repetition by repetition."""
    detect = DetectConfig(fps=DETECT_FPS, width=DETECT_WIDTH)
    keyframes = DetectConfig(fps=DETECT_FPS, width=DETECT_WIDTH, decode="keyframes")
    cpu: dict[str, list[float]] = {}
    sampled: dict[str, int] = {}

    def add(name: str, seconds: float) -> None:
        cpu.setdefault(name, []).append(seconds)

    for repetition in range(repetitions):
        add("ffmpeg_raw", child_cpu(ffmpeg("-threads", "1", "-i", str(path), "-f", "null", "-")))
        add(
            "ffmpeg_startup",
            child_cpu(
                ffmpeg("-threads", "1", "-i", str(path), "-frames:v", "1", "-f", "null", "-")
            ),
        )
        add(
            "ffmpeg_keyframes_raw",
            child_cpu(
                ffmpeg("-threads", "1", "-skip_frame", "nokey", "-i", str(path), "-f", "null", "-")
            ),
        )
        add("pyav_bare", pyav_bare(path))
        runs = {
            "ours_decode_only": run_reader(path, detect=detect),
            "ours_sampled": run_reader(path, detect=detect, count_frames=True),
            "ours_keyframes": run_reader(path, detect=keyframes, count_frames=True),
        }
        for name, run in runs.items():
            if run.packets != frames:
                raise RuntimeError(f"{name}: {run.packets} packets, expected {frames}")
            add(name, run.cpu_s)
            sampled[name] = run.sampled
        wanted = frames * DETECT_FPS / FPS
        if abs(runs["ours_sampled"].sampled - wanted) > 2:  # not sampled by video time
            raise RuntimeError(f"sampled {runs['ours_sampled'].sampled} frames, not {wanted:g}")
        log(
            f"{path.name} #{repetition + 1}: "
            + ", ".join(f"{name} {values[-1]:.3f}s" for name, values in cpu.items())
        )
    startup = statistics.median(cpu["ffmpeg_startup"])
    net = [max(1e-6, seconds - startup) for seconds in cpu["ffmpeg_raw"]]
    net_keys = [max(1e-6, seconds - startup) for seconds in cpu["ffmpeg_keyframes_raw"]]
    figures: dict[str, float] = {
        "ffmpeg": rate(frames - 1, net),
        "ffmpeg_raw": rate(frames, cpu["ffmpeg_raw"]),
        "ffmpeg_keyframes": rate(frames - 1, net_keys),
        "pyav_bare": rate(frames, cpu["pyav_bare"]),
        "ours_decode_only": rate(frames, cpu["ours_decode_only"]),
        "ours_sampled": rate(frames, cpu["ours_sampled"]),
        "ours_keyframes": rate(frames, cpu["ours_keyframes"]),
    }
    result: dict[str, float | int] = {
        "frames": frames,
        "ffmpeg_startup_cpu_s": round(startup, 3),
        "sampled_frames": sampled["ours_sampled"],
        "keyframes_sampled": sampled["ours_keyframes"],
    }
    result.update({f"{name}_fps_cpu": round(value, 1) for name, value in figures.items()})
    for name in ("ours_decode_only", "ours_sampled"):
        result[f"ratio_{name.removeprefix('ours_')}"] = round(figures[name] / figures["ffmpeg"], 3)
    result["ratio_keyframes"] = round(figures["ours_keyframes"] / figures["ffmpeg_keyframes"], 3)
    result["ratio_sampled_vs_raw"] = round(figures["ours_sampled"] / figures["ffmpeg_raw"], 3)
    result["ratio_pyav_bare"] = round(figures["pyav_bare"] / figures["ffmpeg"], 3)
    return result


def versions() -> dict[str, str]:
    first = subprocess.run(["ffmpeg", "-version"], capture_output=True, text=True, check=True)
    codec = ".".join(str(part) for part in av.library_versions["libavcodec"])
    return {"ffmpeg": first.stdout.split()[2], "pyav": av.__version__, "pyav_libavcodec": codec}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--repetitions", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=20.0, help="length of each input")
    args = parse_arguments(parser, repetitions=1, seconds=2.0)
    frames = round(args.seconds * FPS)
    streams = {"1080p25": (1920, 1080), "360p25": (640, 360)}
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="xueliang-bench-") as scratch:
        results: dict[str, dict[str, float | int]] = {}
        for name, (width, height) in streams.items():
            log(f"encoding {name} ({frames} frames)")
            path = encode_camera(Path(scratch) / f"{name}.mp4", width, height, frames)
            results[name] = measure_stream(path, frames, args.repetitions)
    print(
        json.dumps(
            {
                "bench": "decode",
                "repetitions": args.repetitions,
                "seconds_per_input": args.seconds,
                **versions(),
                **results,
                "wall_s": round(time.monotonic() - started, 1),
            }
        )
    )


if __name__ == "__main__":
    main()
