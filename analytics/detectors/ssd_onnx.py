"""TensorFlow object-detection SSD graphs exported to ONNX, run with onnxruntime."""

from __future__ import annotations

import cv2
import numpy as np

from analytics.config import SsdOnnxDetectorConfig
from analytics.detectors.base import Detector
from analytics.detectors.providers import create_session
from common.types import BGRImage, Box, Detection


class SsdOnnxDetector(Detector):
    """The TF-OD SSD layout: uint8 NHWC RGB in; boxes (ymin, xmin, ymax, xmax), scores,
    classes and num_detections out, with NMS inside the graph.

    Example:
        >>> import numpy as np
        >>> detector = SsdOnnxDetector(SsdOnnxDetectorConfig(min_score=0.5))
        >>> detector.detect(np.zeros((576, 768, 3), np.uint8))
        []
    """

    type_key = "ssd_onnx"

    def __init__(self, config: SsdOnnxDetectorConfig) -> None:
        self.config = config
        self.labels = config.reported_labels()
        self.session = create_session(config)
        self.input_name = self.session.get_inputs()[0].name
        self.output_names = [
            "detection_boxes:0",
            "detection_scores:0",
            "detection_classes:0",
            "num_detections:0",
        ]

    def detect(self, image: BGRImage) -> list[Detection]:
        size = self.config.input_size
        resized = cv2.resize(image, (size, size), interpolation=cv2.INTER_LINEAR)
        batch = cv2.cvtColor(resized, cv2.COLOR_BGR2RGB)[np.newaxis]
        boxes, scores, classes, count = self.session.run(
            self.output_names, {self.input_name: batch}
        )
        found: list[Detection] = []
        for index in range(int(count[0])):
            score = float(scores[0, index])
            label = self.labels.get(int(classes[0, index]))
            if label is None or score < self.config.min_score:
                continue
            y1, x1, y2, x2 = (float(v) for v in np.clip(boxes[0, index], 0.0, 1.0))
            found.append(Detection(Box(x1, y1, x2, y2), score, label))
        return found
