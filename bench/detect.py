"""Detector calls per second through the pipeline's detector path against bare onnxruntime.

- ours: `create_detector(config).detect(image)`, what the analytics loop calls, with the
  bundled SSDLite person model (`ssd_onnx`, one thread, CPU provider) on 640x360 BGR frames of
  vtest.avi sampled at 5 fps (as in `bench/cameras.py`): resizing, colour conversion, the
  session and the reading of its outputs included;
- bare: an onnxruntime session made here with the same options (one intra-op and one
  inter-op thread, all graph optimizations, CPU) running the same model on the same frames
  already resized to 300x300 RGB, outputs not read.

Each repetition runs both on every frame, call by call (alternating which goes first), so
that load from other processes hits both alike; the figures are the medians of calls per wall
second and per CPU second, and `ratio` is ours / bare (the goal is 0.9 or more: the plugin
adds little to the model's own cost).

Usage: .venv/bin/python bench/detect.py [--repetitions 5] [--calls 60]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import onnxruntime as ort
from cameras import WARMUP_CALLS, detect_frames
from decode import log
from smoke import parse_arguments

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from analytics.config import SsdOnnxDetectorConfig
from analytics.detectors import create_detector

PROVIDER = "CPUExecutionProvider"
THREADS = 1


def bare_session(model: Path) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = THREADS
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(str(model), options, providers=[PROVIDER])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--repetitions", type=int, default=5)
    parser.add_argument("--calls", type=int, default=60)
    args = parse_arguments(parser, repetitions=1, calls=WARMUP_CALLS + 1)
    started = time.monotonic()
    config = SsdOnnxDetectorConfig(threads=THREADS, providers=[PROVIDER])
    detector = create_detector(config)
    session = bare_session(config.model)
    feed = session.get_inputs()[0].name
    images = detect_frames(args.calls)
    size = (config.input_size, config.input_size)
    tensors = [cv2.cvtColor(cv2.resize(image, size), cv2.COLOR_BGR2RGB)[None] for image in images]
    calls: dict[str, Callable[[int], object]] = {
        "ours": lambda index: detector.detect(images[index]),
        "bare": lambda index: session.run(None, {feed: tensors[index]}),
    }
    for index in range(WARMUP_CALLS):
        for call in calls.values():
            call(index)
    wall: dict[str, list[float]] = {name: [] for name in calls}
    cpu: dict[str, list[float]] = {name: [] for name in calls}
    found = sum(len(detector.detect(image)) for image in images)
    for repetition in range(args.repetitions):
        spent = {name: [0.0, 0.0] for name in calls}
        for index in range(len(images)):
            order = list(calls) if index % 2 == 0 else list(calls)[::-1]
            for name in order:
                began, began_cpu = time.perf_counter(), time.process_time()
                calls[name](index)
                spent[name][0] += time.perf_counter() - began
                spent[name][1] += time.process_time() - began_cpu
        for name, (wall_s, cpu_s) in spent.items():
            wall[name].append(args.calls / wall_s)
            cpu[name].append(args.calls / cpu_s)
        log(
            f"detect #{repetition + 1}: ours {wall['ours'][-1]:.1f}/s, "
            f"bare onnxruntime {wall['bare'][-1]:.1f}/s"
        )
    if found == 0:
        raise RuntimeError("the detector found no one in vtest.avi")
    per_s = {name: statistics.median(values) for name, values in wall.items()}
    per_cpu_s = {name: statistics.median(values) for name, values in cpu.items()}
    result: dict[str, object] = {
        "bench": "detect",
        "model": f"{config.type} {config.model.name}",
        "frames": f"{args.calls} x 640x360 BGR",
        "repetitions": args.repetitions,
        "threads": THREADS,
        "provider": PROVIDER,
        "ours_calls_per_s": round(per_s["ours"], 1),
        "bare_calls_per_s": round(per_s["bare"], 1),
        "ratio": round(per_s["ours"] / per_s["bare"], 3),
        "ours_calls_per_cpu_s": round(per_cpu_s["ours"], 1),
        "bare_calls_per_cpu_s": round(per_cpu_s["bare"], 1),
        "ratio_cpu": round(per_cpu_s["ours"] / per_cpu_s["bare"], 3),
        "people_found_per_pass": found,
        "onnxruntime": ort.__version__,
        "opencv": cv2.__version__,
        "wall_s": round(time.monotonic() - started, 1),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
