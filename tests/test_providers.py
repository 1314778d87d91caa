"""Execution providers: `auto` takes the best available, unavailable ones fall back with one
clear warning. The sessions are real (the bundled SSD model); this machine has only the CPU."""

from __future__ import annotations

import logging

import onnxruntime as ort
import pytest

from analytics.config import SsdOnnxDetectorConfig
from analytics.detectors import choose_providers, create_session

CPU, CUDA, TENSORRT, OPENVINO = (
    "CPUExecutionProvider",
    "CUDAExecutionProvider",
    "TensorrtExecutionProvider",
    "OpenVINOExecutionProvider",
)
AVAILABLE = ort.get_available_providers()
cpu_only = pytest.mark.skipif(
    any(p in AVAILABLE for p in (CUDA, TENSORRT, OPENVINO)), reason="an accelerator is present"
)


def warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]


@cpu_only
def test_missing_cuda_falls_back_to_cpu_with_one_clear_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    session = create_session(SsdOnnxDetectorConfig(providers=[CUDA, CPU]))
    assert session.get_providers() == [CPU]
    assert warnings(caplog) == [
        f"detector: {CUDA} not available (available: {', '.join(AVAILABLE)}); using {CPU}"
    ]


@cpu_only
def test_only_unavailable_providers_fall_back_to_cpu(caplog: pytest.LogCaptureFixture) -> None:
    session = create_session(SsdOnnxDetectorConfig(providers=[TENSORRT, CUDA]))
    assert session.get_providers() == [CPU]
    assert warnings(caplog) == [
        f"detector: {TENSORRT}, {CUDA} not available (available: {', '.join(AVAILABLE)}); "
        f"using {CPU}"
    ]


@cpu_only
def test_auto_picks_the_cpu_here_without_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    session = create_session(SsdOnnxDetectorConfig(providers="auto"))
    assert session.get_providers() == [CPU]
    assert warnings(caplog) == []


def test_auto_prefers_tensorrt_then_cuda_then_openvino_then_cpu() -> None:
    available = ["AzureExecutionProvider", CPU, OPENVINO, CUDA, TENSORRT]
    assert choose_providers("auto", available) == [TENSORRT, CUDA, OPENVINO, CPU]
    assert choose_providers("auto", ["AzureExecutionProvider", CPU]) == [CPU]


def test_requested_order_is_kept(caplog: pytest.LogCaptureFixture) -> None:
    assert choose_providers([CPU, CUDA], [CUDA, CPU]) == [CPU, CUDA]
    assert warnings(caplog) == []


def test_threads_and_optimizations_reach_the_session() -> None:
    options = create_session(SsdOnnxDetectorConfig(threads=2)).get_session_options()
    assert options.intra_op_num_threads == 2
    assert options.inter_op_num_threads == 1
    assert options.graph_optimization_level == ort.GraphOptimizationLevel.ORT_ENABLE_ALL
