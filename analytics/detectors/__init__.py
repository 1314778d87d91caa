"""Detector plugins, keyed by their config `type`."""

from analytics.detectors.base import Detector, create_detector
from analytics.detectors.providers import choose_providers, create_session
from analytics.detectors.ssd_onnx import SsdOnnxDetector
from analytics.detectors.yolo import Yolov5OnnxDetector, Yolov8OnnxDetector

__all__ = [
    "Detector",
    "SsdOnnxDetector",
    "Yolov5OnnxDetector",
    "Yolov8OnnxDetector",
    "choose_providers",
    "create_detector",
    "create_session",
]
