"""Detector plugins, keyed by their config `type`."""

from analytics.detectors.base import Detector, create_detector
from analytics.detectors.ssd_onnx import SsdOnnxDetector

__all__ = ["Detector", "SsdOnnxDetector", "create_detector"]
