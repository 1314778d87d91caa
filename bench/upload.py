"""Clip upload throughput through the spool and the uploader against a bare `put_object`.

- ours: what the recorder and the worker's uploader do with each clip: `Spool.add` (move the
  file in, hash it (SHA-256), fsync it and its manifest) on one thread while the `Uploader`
  checks each entry's bytes against its manifest (SHA-256, and the MD5 of the ETag; the next
  entry's on a second thread while one is sent), puts it with its metadata and tags,
  verifies it with a HEAD (size, SHA-256 metadata, ETag) and removes it; timed from the
  first `add` until the spool is empty;
- drain: the same uploader emptying a spool that already holds the clips (the backlog
  after an S3 outage, when throughput matters most), timed from its start;
- bare: `Minio.put_object` of the same files, one after the other, from open files, with
  the content type and nothing else.

Both go to the same SeaweedFS server (`weed mini`, started here on loopback), over the same
SDK client settings. After one untimed round of both (the server grows its first volumes),
each repetition runs both, alternating which goes first; the figures are medians of MB/s and
clips/s, and `ratio` (`ratio_drain`) is the median of the repetitions' ours (drain) / bare
(goal: 0.9 or more).

Usage: .venv/bin/python bench/upload.py [--repetitions 7] [--clips 30] [--clip-mb 4]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from decode import log
from smoke import parse_arguments

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from storage.config import EmbeddedS3Config, SpoolConfig
from storage.media.embedded_s3 import EmbeddedS3Server
from storage.media.objects import ObjectStore
from storage.media.spool import Spool
from storage.media.uploader import Uploader
from tests.servers import free_port


def bare(store: ObjectStore, files: list[Path], prefix: str) -> float:
    started = time.perf_counter()
    for path in files:
        with open(path, "rb") as data:
            store.client.put_object(
                store.bucket,
                f"{prefix}/{path.name}",
                data,
                path.stat().st_size,
                content_type="video/mp4",
            )
    return time.perf_counter() - started


def ours(store: ObjectStore, files: list[Path], work: Path, prefix: str, drain: bool) -> float:
    staged = work / "staged"
    staged.mkdir()
    copies = [Path(shutil.copy(path, staged / path.name)) for path in files]  # add moves them
    spool = Spool(work / "spool", SpoolConfig())
    spool.open()
    uploader = Uploader(spool, store)
    meta = {"site": "bench", "camera": "cam", "event-id": "e", "event-type": "zone_intrusion"}

    def add_all() -> None:
        for path in copies:
            spool.add(path, f"{prefix}/{path.name}", "video/mp4", meta, "clip", {"kind": "clip"})

    if drain:
        add_all()
        started = time.perf_counter()
        uploader.start()
    else:
        uploader.start()
        started = time.perf_counter()
        add_all()
    while len(spool):
        time.sleep(0.005)
    took = time.perf_counter() - started
    uploader.stop(0)
    spool.close()
    assert uploader.stats.uploaded == len(files) and uploader.stats.failures == 0
    return took


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--repetitions", type=int, default=7)
    parser.add_argument("--clips", type=int, default=30)
    parser.add_argument("--clip-mb", type=float, default=4.0)
    args = parse_arguments(parser, repetitions=1, clips=3, clip_mb=0.25)
    begun = time.monotonic()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        config = EmbeddedS3Config(data_dir=root / "s3", port=free_port(), bucket="bench")
        server = EmbeddedS3Server(config)
        server.start()
        try:
            store = ObjectStore.from_config(config)
            store.ensure_bucket()
            clips = root / "clips"
            clips.mkdir()
            size = int(args.clip_mb * 1024 * 1024)
            # Random bytes: incompressible like H.264, sized like a 10-20 s event clip.
            files = [clips / f"clip-{n:03d}.mp4" for n in range(args.clips)]
            for path in files:
                path.write_bytes(os.urandom(size))
            times: dict[str, list[float]] = {"ours": [], "drain": [], "bare": []}
            for rep in range(-1, args.repetitions):  # -1: the untimed warm-up
                order = ["ours", "drain", "bare"]
                for mode in order[rep % 3 :] + order[: rep % 3]:
                    if mode == "bare":
                        times["bare"].append(bare(store, files, f"bare-{rep}"))
                    else:
                        work = root / f"{mode}{rep}"
                        work.mkdir()
                        took = ours(store, files, work, f"{mode}-{rep}", mode == "drain")
                        times[mode].append(took)
                        shutil.rmtree(work)
                log(
                    f"repetition {rep + 1}: "
                    + ", ".join(f"{m} {t[-1]:.2f}s" for m, t in times.items())
                )
                if rep < 0:
                    times = {mode: [] for mode in times}
        finally:
            server.stop()
    total_mb = size * args.clips / 1024 / 1024
    result: dict[str, float | int] = {"clips": args.clips, "clip_mb": args.clip_mb}
    for mode, runs in times.items():
        median = statistics.median(runs)
        result[f"{mode}_mb_per_s"] = round(total_mb / median, 1)
        result[f"{mode}_clips_per_s"] = round(args.clips / median, 2)
    for mode, name in (("ours", "ratio"), ("drain", "ratio_drain")):
        paired = [b / o for o, b in zip(times[mode], times["bare"], strict=True)]
        result[name] = round(statistics.median(paired), 3)
        result[f"{name}_min"] = round(min(paired), 3)
        result[f"{name}_max"] = round(max(paired), 3)
    result["repetitions"] = args.repetitions
    result["seconds"] = round(time.monotonic() - begun, 1)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
