"""The onnxruntime session every ONNX detector plugin runs on: providers, threads, optimizations."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Literal

import onnxruntime as ort

from analytics.config import OnnxDetectorConfig

log = logging.getLogger(__name__)

CPU = "CPUExecutionProvider"
AUTO_ORDER = (
    "TensorrtExecutionProvider",
    "CUDAExecutionProvider",
    "OpenVINOExecutionProvider",
    CPU,
)
"""What `providers: auto` uses, best first, of those this onnxruntime build has."""


def choose_providers(
    requested: Literal["auto"] | Sequence[str], available: Sequence[str]
) -> list[str]:
    """The execution providers to ask onnxruntime for, best first.

    `auto` is every available one of `AUTO_ORDER`. Of an explicit list, the unavailable ones
    are dropped with one warning naming them, what is available and what is used instead; if
    none is left, the CPU is used.

    Example:
        >>> choose_providers("auto", ["CUDAExecutionProvider", "CPUExecutionProvider"])
        ['CUDAExecutionProvider', 'CPUExecutionProvider']
        >>> choose_providers(["CUDAExecutionProvider"], ["CPUExecutionProvider"])
        ['CPUExecutionProvider']
    """
    if requested == "auto":
        return [provider for provider in AUTO_ORDER if provider in available]
    chosen = [provider for provider in requested if provider in available] or [CPU]
    missing = [provider for provider in requested if provider not in available]
    if missing:
        log.warning(
            "detector: %s not available (available: %s); using %s",
            ", ".join(missing),
            ", ".join(available),
            ", ".join(chosen),
        )
    return chosen


def create_session(config: OnnxDetectorConfig) -> ort.InferenceSession:
    """An onnxruntime session for `config.model`: the providers `config.providers` asks for
    (see `choose_providers`), `config.threads` intra-op threads, one inter-op thread (the
    graph runs sequentially) and all graph optimizations.

    Example:
        >>> from analytics.config import SsdOnnxDetectorConfig
        >>> config = SsdOnnxDetectorConfig(providers=["CPUExecutionProvider"], threads=2)
        >>> create_session(config).get_providers()
        ['CPUExecutionProvider']
    """
    options = ort.SessionOptions()
    options.intra_op_num_threads = config.threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    providers = choose_providers(config.providers, ort.get_available_providers())
    session = ort.InferenceSession(str(config.model), options, providers=providers)
    log.info(
        "detector: %s on %s, %d thread(s)",
        config.model.name,
        ", ".join(session.get_providers()),
        config.threads,
    )
    return session
