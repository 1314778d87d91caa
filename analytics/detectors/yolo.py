"""YOLO exports (YOLOv5, YOLOv8, YOLO11) run with onnxruntime: letterbox in, class-aware NMS out."""

from __future__ import annotations

import math
from abc import abstractmethod
from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

from analytics.config import YoloOnnxDetectorConfig
from analytics.detectors.base import Detector
from analytics.detectors.providers import create_session
from common.types import BGRImage, Box, Detection

STRIDE = 32  # YOLO's coarsest feature map: network input sides are multiples of it
PAD_GREY = 114
DYNAMIC_INPUT_SIZE = 640  # longest input side of a model exported with dynamic dimensions

Floats = npt.NDArray[np.float32]


@dataclass(frozen=True, slots=True)
class Letterbox:
    """A picture scaled into the network input with its aspect kept, centred between grey
    borders: `width` x `height` is the scaled picture, `left`/`top` where it starts.

    Example:
        >>> box = Letterbox.fit(360, 640, (640, 640))
        >>> box.width, box.height, box.left, box.top
        (640, 360, 0, 140)
        >>> box.normalize(np.array([[64.0, 140.0, 320.0, 320.0]], np.float32)).tolist()
        [[0.10000000149011612, 0.0, 0.5, 0.5]]
    """

    input_height: int
    input_width: int
    height: int
    width: int
    top: int
    left: int

    @classmethod
    def fit(cls, height: int, width: int, input_size: tuple[int, int]) -> Letterbox:
        """A `height` x `width` picture in a network input of `input_size` (height, width)."""
        input_height, input_width = input_size
        scale = min(input_height / height, input_width / width)
        scaled_height, scaled_width = round(height * scale), round(width * scale)
        return cls(
            input_height,
            input_width,
            scaled_height,
            scaled_width,
            (input_height - scaled_height) // 2,
            (input_width - scaled_width) // 2,
        )

    @classmethod
    def fit_stride_aligned(cls, height: int, width: int, longest: int) -> Letterbox:
        """For a model with dynamic input dimensions: the picture scaled so that its longest
        side is `longest`, in the smallest input whose sides are multiples of `STRIDE`.

        Example:
            >>> box = Letterbox.fit_stride_aligned(360, 640, 320)
            >>> box.input_height, box.input_width, box.height, box.top
            (192, 320, 180, 6)
        """
        scale = longest / max(height, width)
        input_height, input_width = (
            math.ceil(round(side * scale) / STRIDE) * STRIDE for side in (height, width)
        )
        return cls.fit(height, width, (input_height, input_width))

    def blob(self, image: BGRImage) -> Floats:
        """The network input for `image`: float32 NCHW RGB in 0..1."""
        size = (self.width, self.height)
        same = image.shape[:2] == (self.height, self.width)
        scaled = image if same else cv2.resize(image, size, interpolation=cv2.INTER_LINEAR)
        bottom = self.input_height - self.height - self.top
        right = self.input_width - self.width - self.left
        grey = (PAD_GREY, PAD_GREY, PAD_GREY)
        padded = cv2.copyMakeBorder(
            scaled, self.top, bottom, self.left, right, cv2.BORDER_CONSTANT, value=grey
        )
        return np.asarray(cv2.dnn.blobFromImage(padded, 1 / 255, swapRB=True), np.float32)

    def normalize(self, boxes: Floats) -> Floats:
        """Boxes (x1, y1, x2, y2) in network input pixels as fractions of the picture's width
        and height, clipped to it."""
        offset = np.array([self.left, self.top, self.left, self.top], np.float32)
        size = np.array([self.width, self.height, self.width, self.height], np.float32)
        return ((boxes - offset) / size).clip(0.0, 1.0)


def anchor_rows(output: Floats, layout: str, channels_first: bool | None, channels: int) -> Floats:
    """A YOLO output of batch 1 as one row per anchor box: (anchors, channels).

    `channels_first` says the layout; None accepts either and tells them apart by shape: the
    anchors outnumber the channels in every export (8,400 boxes for a 640 input against
    4 + classes), which is also checked, so an output with two equal sides is refused.
    `channels` is the least number of channels the layout has.
    """
    if output.ndim == 3 and output.shape[0] == 1:
        table = output[0]
        if channels_first is None:
            channels_first = table.shape[0] < table.shape[1]
        rows: Floats = table.T if channels_first else table
        if rows.shape[0] > rows.shape[1] >= channels:
            return rows
    raise ValueError(f"an output of shape {output.shape} is not the YOLO layout {layout}")


class YoloOnnxDetector(Detector):
    """What the YOLO layouts share: float32 NCHW RGB 0..1 input letterboxed to the model's
    input size (pad grey 114), boxes mapped back to the picture, the score threshold, the
    label map and class-aware NMS. Subclasses read their layout's output (`_candidates`).

    The output layout is checked once at start-up on a blank picture, so a model that does
    not fit fails here (and in `xueliang check-config`), not on the first camera frame.
    """

    def __init__(self, config: YoloOnnxDetectorConfig) -> None:
        self.config = config
        self.labels = config.reported_labels()
        self._label_ids = np.fromiter(self.labels, np.int64, len(self.labels))
        self.session = create_session(config)
        model_input = self.session.get_inputs()[0]
        if model_input.type != "tensor(float)" or len(model_input.shape) != 4:
            raise ValueError(
                f"{config.model.name}: input {model_input.type} {model_input.shape} is not "
                "float32 NCHW"
            )
        self.input_name = model_input.name
        self.output_name = self.session.get_outputs()[0].name
        height, width = model_input.shape[2:]
        self.fixed_size: tuple[int, int] | None = None
        if isinstance(height, int) and isinstance(width, int):
            if config.input_size not in (None, max(height, width)):
                raise ValueError(
                    f"input_size is {config.input_size} but {config.model.name} takes a fixed "
                    f"{width}x{height} input"
                )
            self.fixed_size = (height, width)
        self.detect(np.full((STRIDE, STRIDE, 3), PAD_GREY, np.uint8))

    def letterbox(self, height: int, width: int) -> Letterbox:
        """Where a `height` x `width` picture goes in this model's input."""
        if self.fixed_size is not None:
            return Letterbox.fit(height, width, self.fixed_size)
        longest = self.config.input_size or DYNAMIC_INPUT_SIZE
        return Letterbox.fit_stride_aligned(height, width, longest)

    @abstractmethod
    def _candidates(self, output: Floats) -> tuple[Floats, Floats]:
        """From the model's output: boxes (cx, cy, w, h) in input pixels, one row per anchor,
        and their class scores (anchors x classes)."""

    def detect(self, image: BGRImage) -> list[Detection]:
        letterbox = self.letterbox(image.shape[0], image.shape[1])
        (output,) = self.session.run([self.output_name], {self.input_name: letterbox.blob(image)})
        centred, class_scores = self._candidates(np.asarray(output, np.float32))
        wanted = np.flatnonzero(class_scores.max(axis=1) >= self.config.min_score)
        class_ids = class_scores[wanted].argmax(axis=1)  # on the few candidates only: cheaper
        reported = np.isin(class_ids, self._label_ids)
        wanted, class_ids = wanted[reported], class_ids[reported]
        centred, scores = centred[wanted], class_scores[wanted, class_ids]
        sizes = centred[:, 2:]
        xywh = np.concatenate([centred[:, :2] - sizes / 2, sizes], axis=1)
        kept = np.asarray(
            cv2.dnn.NMSBoxesBatched(
                xywh.tolist(),
                scores.tolist(),
                class_ids.tolist(),
                score_threshold=0.0,  # the scores were filtered above
                nms_threshold=self.config.iou,
            ),
            np.int64,
        ).reshape(-1)
        # Best first, then at most max_detections (NMSBoxes' top_k cuts before NMS, not after).
        kept = kept[np.argsort(-scores[kept], kind="stable")][: self.config.max_detections]
        corners = xywh[kept, :2]
        boxes = letterbox.normalize(np.concatenate([corners, corners + xywh[kept, 2:]], axis=1))
        return [
            Detection(Box(*(float(v) for v in box)), float(score), self.labels[int(class_id)])
            for box, score, class_id in zip(boxes, scores[kept], class_ids[kept], strict=True)
        ]


class Yolov5OnnxDetector(YoloOnnxDetector):
    """The YOLOv5 layout: output N x (5 + classes) of cx, cy, w, h, objectness and class
    scores; a box's score is its objectness times its best class score.

    Example:
        >>> from analytics.config import Yolov5OnnxDetectorConfig
        >>> config = Yolov5OnnxDetectorConfig(model="yolov5s.onnx")  # doctest: +SKIP
        >>> Yolov5OnnxDetector(config).detect(frame)  # doctest: +SKIP
        [Detection(box=Box(x1=0.41, y1=0.22, x2=0.47, y2=0.61), score=0.87, label='person')]
    """

    type_key = "yolov5_onnx"

    def _candidates(self, output: Floats) -> tuple[Floats, Floats]:
        rows = anchor_rows(output, "N x (5 + classes)", channels_first=False, channels=6)
        rows = rows[rows[:, 4] >= self.config.min_score]  # objectness bounds the score
        return rows[:, :4], rows[:, 5:] * rows[:, 4:5]


class Yolov8OnnxDetector(YoloOnnxDetector):
    """The YOLOv8 / YOLO11 layout: output (4 + classes) x N of cx, cy, w, h and class scores,
    no objectness; the transposed N x (4 + classes) is recognised by its shape.

    Example:
        >>> from analytics.config import Yolov8OnnxDetectorConfig
        >>> config = Yolov8OnnxDetectorConfig(model="yolo11n.onnx", keep=["car"])  # doctest: +SKIP
        >>> Yolov8OnnxDetector(config).detect(frame)  # doctest: +SKIP
        [Detection(box=Box(x1=0.05, y1=0.52, x2=0.31, y2=0.8), score=0.91, label='car')]
    """

    type_key = "yolov8_onnx"

    def _candidates(self, output: Floats) -> tuple[Floats, Floats]:
        rows = anchor_rows(output, "(4 + classes) x N", channels_first=None, channels=5)
        return rows[:, :4], rows[:, 4:]
