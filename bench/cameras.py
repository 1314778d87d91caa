"""How many cameras one core sustains in real time, from the CPU cost of each piece, one JSON line.

A camera here is a 1920x1080 25 fps main stream (recorded: demuxed into the packet ring, never
decoded) with a 640x360 25 fps sub-stream (decoded, sampled at 5 fps to 640x360 BGR) and
person detection at 5 fps. Each piece is measured on its own, on one thread, in CPU seconds
(medians of a few repetitions), beside the native tool on the same input where there is one:

- (a) `demux_us_per_packet`: `ingest.stream.StreamReader` with only a `PacketRing`
  (`realtime: false`) over the main stream; native: `ffmpeg -i X -c copy -f null -`;
- (b) `decode_us_per_frame`: a StreamReader sampling the sub-stream at 5 fps to an `on_frame`
  (as in `bench/decode.py`: sampled by media time, no pacing sleeps), per input frame;
  native: `ffmpeg -threads 1 -i X -f null -`; both less ffmpeg's own start-up cost;
- (c) `detect_ms_per_call`: `create_detector(SsdOnnxDetectorConfig()).detect(image)` on
  640x360 frames of vtest.avi at 5 fps; native: a bare onnxruntime loop (one intra-op thread)
  on the same model with the same frames already resized to 300x300 RGB;
- (d) `analytics_ms_per_frame`: `CameraAnalytics.analyse` (motion gate, detector on its
  crops, tracker, a whole-view intrusion zone, picture checks; default settings, events
  discarded) over all of vtest.avi at 5 fps as 640x360 BGR, per frame, with
  `detector_calls_per_frame` and `frames_detected` (share of frames the gate sent to the
  detector). vtest has people walking in view throughout, so this is a pessimistic figure.

CPU per camera-second = 25 a + 25 b + 5 d; `cameras_per_core` = 1 / that, `share_*` and
`*_ms_per_camera_second` are where that time goes (`detect` = 5 d), and
`cameras_per_core_without_detector` the ceiling set by ingest alone;
`cameras_per_core_one_call_per_frame` is the old figure, 25 a + 25 b + 5 c (one whole-frame
call per frame). `native_cameras_per_core` still sums bare ffmpeg and one bare onnxruntime call
per frame, and `ratio` = `cameras_per_core` / that: the gate trades more calls, on ~224 px
crops, for finding the far-away people whole frames miss (tests/test_gate.py, bench/gate.py).
Not counted: RTSP reception (network reads cost more than a file's), event storage, uploads.

Usage: .venv/bin/python bench/cameras.py [--repetitions 3] [--detect-calls 60] [--smoke]
       [--main-seconds 20] [--sub-seconds 60] [--analytics-frames N]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import av
import cv2
import numpy as np
import numpy.typing as npt
import onnxruntime as ort
from decode import (
    FPS,
    VTEST,
    child_cpu,
    encode_camera,
    ffmpeg,
    log,
    remux,
    run_reader,
    versions,
)
from smoke import parse_arguments

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from analytics.config import EventTimingConfig, SsdOnnxDetectorConfig, ZoneConfig
from analytics.detectors import create_detector
from analytics.gate import GateConfig
from analytics.health import ConditionEvents
from analytics.pipeline import CameraAnalytics, CameraRules
from analytics.quality import QualityConfig
from analytics.tracker import TrackerConfig
from common.types import Detection, Event, Frame
from ingest.config import DetectConfig

DETECT_FPS = 5
DEMUX_LOOPS = 10  # the main stream is encoded once, then demuxed as so many copies in a row
FIRST_DETECT_FRAME = 280  # vtest.avi frame: people on the walkway from here on
WARMUP_CALLS = 5
WHOLE_VIEW = [(0.0, 0.0), (1.0, 0.0), (1.0, 1.0), (0.0, 1.0)]

Image = npt.NDArray[np.uint8]


def net_per_item(raw: list[float], startup: float, items: int) -> float:
    """Median CPU seconds per item of a native run, less the native tool's fixed cost."""
    return max(1e-9, statistics.median(raw) - startup) / (items - 1)


def measure_demux(main: Path, packets: int, repetitions: int) -> tuple[float, float]:
    """(a) CPU seconds per main-stream packet: ours (ring only), ffmpeg stream copy."""
    ours: list[float] = []
    native: list[float] = []
    startup: list[float] = []
    copy = ("-map", "0:v", "-c", "copy", "-f", "null", "-")
    for repetition in range(repetitions):
        run = run_reader(main, ring=True)
        if run.packets != packets or run.decoded:
            raise RuntimeError(f"demux: {run.packets} packets, {run.decoded} decoded")
        ours.append(run.cpu_s)
        native.append(child_cpu(ffmpeg("-i", str(main), *copy)))
        startup.append(child_cpu(ffmpeg("-i", str(main), "-frames:v", "1", *copy)))
        log(f"demux #{repetition + 1}: ours {ours[-1]:.3f}s, ffmpeg copy {native[-1]:.3f}s")
    return statistics.median(ours) / packets, net_per_item(
        native, statistics.median(startup), packets
    )


def measure_sub_decode(sub: Path, frames: int, repetitions: int) -> tuple[float, float, int]:
    """(b) CPU seconds per sub-stream frame: ours (decode, sample 5 fps), ffmpeg decode; and
    how many frames ours handed on in the last run."""
    detect = DetectConfig(fps=DETECT_FPS, width=640)
    ours: list[float] = []
    native: list[float] = []
    startup: list[float] = []
    sampled = 0
    for repetition in range(repetitions):
        run = run_reader(sub, detect=detect, count_frames=True)
        if run.packets != frames or run.decoded != frames:
            raise RuntimeError(f"sub decode: {run.packets} packets, {run.decoded} decoded")
        if abs(run.sampled - frames * DETECT_FPS / FPS) > 2:
            raise RuntimeError(f"sub decode: {run.sampled} frames sampled, not 1 in 5")
        ours.append(run.cpu_s)
        sampled = run.sampled
        decode = ("-threads", "1", "-i", str(sub))
        native.append(child_cpu(ffmpeg(*decode, "-f", "null", "-")))
        startup.append(child_cpu(ffmpeg(*decode, "-frames:v", "1", "-f", "null", "-")))
        log(f"sub decode #{repetition + 1}: ours {ours[-1]:.3f}s, ffmpeg {native[-1]:.3f}s")
    per_frame = statistics.median(ours) / frames
    return per_frame, net_per_item(native, statistics.median(startup), frames), sampled


def vtest_frames(first: int = 0, count: int | None = None) -> list[tuple[int, Image]]:
    """Frames of vtest.avi (10 fps) at 5 fps from frame number `first` (`count` of them, or
    all), numbered, as the 640x360 BGR the reader hands on."""
    images: list[tuple[int, Image]] = []
    with av.open(str(VTEST)) as container:
        for index, frame in enumerate(container.decode(video=0)):
            if index >= first and index % 2 == 0:
                image = frame.to_ndarray(width=640, height=360, format="bgr24")
                images.append((index, image.astype(np.uint8, copy=False)))
            if len(images) == count:
                break
    if count is not None and len(images) < count:
        raise RuntimeError(f"vtest.avi gave only {len(images)} frames")
    return images


def detect_frames(count: int) -> list[Image]:
    """`count` frames of vtest.avi at 5 fps from where people are on the walkway."""
    return [image for _, image in vtest_frames(FIRST_DETECT_FRAME, count)]


def measure_detector(calls: int, repetitions: int) -> tuple[float, float, float, float]:
    """(c) CPU seconds per call of our detector and of a bare onnxruntime loop, then the wall
    seconds per call of each."""
    config = SsdOnnxDetectorConfig()
    detector = create_detector(config)
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(str(config.model), options, providers=["CPUExecutionProvider"])
    images = detect_frames(calls)
    size = (config.input_size, config.input_size)
    tensors = [cv2.cvtColor(cv2.resize(image, size), cv2.COLOR_BGR2RGB)[None] for image in images]
    for image, tensor in zip(images[:WARMUP_CALLS], tensors[:WARMUP_CALLS], strict=True):
        detector.detect(image)
        session.run(None, {"image_tensor:0": tensor})
    cpu: dict[str, list[float]] = {"ours": [], "bare": []}
    wall: dict[str, list[float]] = {"ours": [], "bare": []}
    found = 0

    def ours() -> None:
        nonlocal found
        found = sum(len(detector.detect(image)) for image in images)

    def bare() -> None:
        for tensor in tensors:
            session.run(None, {"image_tensor:0": tensor})

    for repetition in range(repetitions):
        order = [("ours", ours), ("bare", bare)]
        for name, loop in order if repetition % 2 == 0 else order[::-1]:
            started, before = time.perf_counter(), time.process_time()
            loop()
            cpu[name].append(time.process_time() - before)
            wall[name].append(time.perf_counter() - started)
        log(
            f"detector #{repetition + 1}: ours {cpu['ours'][-1]:.3f}s, "
            f"bare onnxruntime {cpu['bare'][-1]:.3f}s for {calls} calls; {found} people found"
        )
    if found == 0:
        raise RuntimeError("the detector found no one in vtest.avi")
    per_call = {name: statistics.median(values) / calls for name, values in cpu.items()}
    wall_per_call = {name: statistics.median(values) / calls for name, values in wall.items()}
    return per_call["ours"], per_call["bare"], wall_per_call["ours"], wall_per_call["bare"]


class Discard:
    """An event sink that drops the events: storing them is not counted."""

    def event_started(self, event: Event) -> None:
        pass

    def event_ended(self, event: Event) -> None:
        pass


def measure_analytics(repetitions: int, count: int | None) -> tuple[float, float, float, int]:
    """(d) CPU seconds per analysed frame of `CameraAnalytics.analyse` over all of vtest.avi at
    5 fps (or `count` frames from where people walk), then detector calls per frame, the share
    of frames the gate detected on, and the frame count (the last two from the last run; the
    footage is the same each time)."""
    detector = create_detector(SsdOnnxDetectorConfig())
    frames = vtest_frames() if count is None else vtest_frames(FIRST_DETECT_FRAME, count)
    for _, image in frames[:WARMUP_CALLS]:
        detector.detect(image)
    calls = 0
    detect = detector.detect

    def counted(image: Image) -> list[Detection]:
        nonlocal calls
        calls += 1
        return detect(image)

    detector.detect = counted  # type: ignore[method-assign]
    cpu: list[float] = []
    detected = 0.0
    for repetition in range(repetitions):
        setup = CameraRules(
            "vtest", "bench", [ZoneConfig(name="view", points=WHOLE_VIEW)], [], GateConfig(),
            QualityConfig(),
        )  # fmt: skip
        camera = CameraAnalytics(
            setup, TrackerConfig(), EventTimingConfig(), Discard(), ConditionEvents(Discard())
        )
        calls = 0
        before = time.process_time()
        for number, image in frames:
            camera.analyse(Frame("vtest", image, number / 10), detector)
        cpu.append(time.process_time() - before)
        stats = camera.gate.stats
        if stats.frames != len(frames):
            raise RuntimeError(f"analytics: the gate saw {stats.frames} of {len(frames)} frames")
        detected = stats.detected / stats.frames
        log(
            f"analytics #{repetition + 1}: {cpu[-1]:.3f}s for {len(frames)} frames, "
            f"{calls} detector calls on {stats.detected} frames"
        )
    if calls == 0:
        raise RuntimeError("analytics: the detector was never called")
    return statistics.median(cpu) / len(frames), calls / len(frames), detected, len(frames)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--repetitions", type=int, default=3)
    parser.add_argument("--detect-calls", type=int, default=60)
    parser.add_argument("--main-seconds", type=int, default=20, help="of the main stream")
    parser.add_argument("--sub-seconds", type=int, default=60, help="of the sub-stream")
    parser.add_argument("--analytics-frames", type=int, help="instead of all of vtest.avi")
    args = parse_arguments(
        parser, repetitions=1, detect_calls=6, main_seconds=1, sub_seconds=2, analytics_frames=6
    )
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="xueliang-bench-") as scratch:
        workdir = Path(scratch)
        log("encoding the main stream and the sub-stream")
        main_frames, sub_frames = args.main_seconds * FPS, args.sub_seconds * FPS
        one_main = encode_camera(workdir / "main-once.mp4", 1920, 1080, main_frames)
        main = remux(one_main, workdir / "main.mp4", "-stream_loop", str(DEMUX_LOOPS - 1))
        sub = encode_camera(workdir / "sub.mp4", 640, 360, sub_frames, loops=1)
        demux, demux_native = measure_demux(main, main_frames * DEMUX_LOOPS, args.repetitions)
        decode, decode_native, sampled = measure_sub_decode(sub, sub_frames, args.repetitions)
    detect, detect_native, detect_wall, detect_native_wall = measure_detector(
        args.detect_calls, args.repetitions
    )
    analytics, calls_per_frame, detected, analysed = measure_analytics(
        args.repetitions, args.analytics_frames
    )
    pieces = {"demux": FPS * demux, "decode": FPS * decode, "detect": DETECT_FPS * analytics}
    native = FPS * demux_native + FPS * decode_native + DETECT_FPS * detect_native
    total = sum(pieces.values())
    one_call = pieces["demux"] + pieces["decode"] + DETECT_FPS * detect
    result: dict[str, object] = {
        "bench": "cameras",
        "repetitions": args.repetitions,
        "camera": f"1920x1080@{FPS} main + 640x360@{FPS} sub, detect {DETECT_FPS} fps",
        "cameras_per_core": round(1 / total, 2),
        "cameras_per_core_one_call_per_frame": round(1 / one_call, 2),
        "native_cameras_per_core": round(1 / native, 2),
        "ratio": round(native / total, 3),
        "cameras_per_core_without_detector": round(1 / (pieces["demux"] + pieces["decode"]), 1),
        "cpu_ms_per_camera_second": round(total * 1e3, 2),
        **{f"share_{name}": round(value / total, 3) for name, value in pieces.items()},
        **{f"{name}_ms_per_camera_second": round(v * 1e3, 2) for name, v in pieces.items()},
        "demux_us_per_packet": round(demux * 1e6, 1),
        "ffmpeg_demux_us_per_packet": round(demux_native * 1e6, 1),
        "decode_us_per_frame": round(decode * 1e6, 1),
        "ffmpeg_decode_us_per_frame": round(decode_native * 1e6, 1),
        "sub_sampled_frames": f"{sampled}/{sub_frames}",
        "detect_ms_per_call": round(detect * 1e3, 2),
        "ort_bare_ms_per_call": round(detect_native * 1e3, 2),
        "detect_wall_ms_per_call": round(detect_wall * 1e3, 2),
        "ort_bare_wall_ms_per_call": round(detect_native_wall * 1e3, 2),
        "analytics_ms_per_frame": round(analytics * 1e3, 2),
        "detector_calls_per_frame": round(calls_per_frame, 2),
        "frames_detected": round(detected, 3),
        "analysed_frames": analysed,
        "onnxruntime": ort.__version__,
        **versions(),
        "wall_s": round(time.monotonic() - started, 1),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
