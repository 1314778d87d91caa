"""Configuration owned by the analytics stage: the detector, zones and event timing."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    Field,
    ValidationError,
    ValidationInfo,
    ValidatorFunctionWrapHandler,
    WrapValidator,
    field_validator,
)
from pydantic_core import InitErrorDetails

import analytics.objects  # noqa: F401  (registers its rules: zone configs accept registered ones)
from analytics.rules import AnyZoneRuleConfig, IntrusionConfig
from analytics.tracker import TrackerConfig
from common.config import StrictModel

DEFAULT_MODEL = Path(__file__).resolve().parent.parent / "models" / "person_ssdlite.onnx"

COCO_LABELS = (
    "person",
    "bicycle",
    "car",
    "motorcycle",
    "airplane",
    "bus",
    "train",
    "truck",
    "boat",
    "traffic light",
    "fire hydrant",
    "stop sign",
    "parking meter",
    "bench",
    "bird",
    "cat",
    "dog",
    "horse",
    "sheep",
    "cow",
    "elephant",
    "bear",
    "zebra",
    "giraffe",
    "backpack",
    "umbrella",
    "handbag",
    "tie",
    "suitcase",
    "frisbee",
    "skis",
    "snowboard",
    "sports ball",
    "kite",
    "baseball bat",
    "baseball glove",
    "skateboard",
    "surfboard",
    "tennis racket",
    "bottle",
    "wine glass",
    "cup",
    "fork",
    "knife",
    "spoon",
    "bowl",
    "banana",
    "apple",
    "sandwich",
    "orange",
    "broccoli",
    "carrot",
    "hot dog",
    "pizza",
    "donut",
    "cake",
    "chair",
    "couch",
    "potted plant",
    "bed",
    "dining table",
    "toilet",
    "tv",
    "laptop",
    "mouse",
    "remote",
    "keyboard",
    "cell phone",
    "microwave",
    "oven",
    "toaster",
    "sink",
    "refrigerator",
    "book",
    "clock",
    "vase",
    "scissors",
    "teddy bear",
    "hair drier",
    "toothbrush",
)
"""The 80 COCO class names in the order YOLOv5/v8/11 exports number them (class id = index)."""


class OnnxDetectorConfig(StrictModel):
    """What every ONNX detector plugin shares: the model file, its label map, which labels to
    report, the score threshold and how onnxruntime runs it.

    `labels` maps the model's class ids to names: a list (class id = index) or a mapping.
    Classes without a name, and names not in `keep` (when given), are never reported.
    `providers` is `auto` (the best available of TensorRT, CUDA, OpenVINO, CPU) or a list of
    onnxruntime execution provider names in order of preference.

    Example:
        >>> config = SsdOnnxDetectorConfig(labels=["background", "person", "bicycle"],
        ...                                keep=["person"])
        >>> config.labels, config.reported_labels()
        ({0: 'background', 1: 'person', 2: 'bicycle'}, {1: 'person'})
    """

    model: Path
    labels: dict[int, str]
    keep: list[str] | None = Field(None, description="labels to report; None reports all")
    min_score: float = Field(
        0.1,
        ge=0.0,
        le=1.0,
        description="weakest detection reported: only those from the tracker's high_score "
        "start tracks, weaker ones keep a track through blur and partial occlusion",
    )
    threads: int = Field(1, ge=1, description="onnxruntime intra-op threads per worker")
    providers: Literal["auto"] | list[str] = "auto"

    @field_validator("model")
    @classmethod
    def _model_exists(cls, model: Path) -> Path:
        if not model.is_file():
            raise ValueError(f"model file not found: {model}")
        return model

    @field_validator("providers", mode="before")
    @classmethod
    def _auto_or_names(cls, providers: object) -> object:
        # One clear message instead of one per member of the union.
        if providers == "auto" or (
            isinstance(providers, list) and providers and all(isinstance(p, str) for p in providers)
        ):
            return providers
        raise ValueError("expected 'auto' or a list of onnxruntime execution provider names")

    @field_validator("labels", mode="before")
    @classmethod
    def _numbered(cls, labels: object) -> object:
        return dict(enumerate(labels)) if isinstance(labels, list | tuple) else labels

    @field_validator("keep")
    @classmethod
    def _keep_known(cls, keep: list[str] | None, info: ValidationInfo) -> list[str] | None:
        names = set(info.data.get("labels", {}).values())
        unknown = [label for label in keep or [] if label not in names]
        if names and unknown:
            raise ValueError(f"not among the model's labels: {', '.join(map(repr, unknown))}")
        return keep

    def reported_labels(self) -> dict[int, str]:
        """The class ids to report and their names: the labels, less those not kept."""
        return {
            class_id: name
            for class_id, name in self.labels.items()
            if self.keep is None or name in self.keep
        }


class SsdOnnxDetectorConfig(OnnxDetectorConfig):
    """A TensorFlow object-detection SSD exported to ONNX (NMS inside the graph).

    The default is the bundled SSDLite-MobileNetV2 person detector (class 1 = person).

    Example:
        >>> SsdOnnxDetectorConfig().reported_labels()
        {1: 'person'}
    """

    type: Literal["ssd_onnx"] = "ssd_onnx"
    model: Path = DEFAULT_MODEL
    input_size: int = Field(300, gt=0)
    labels: dict[int, str] = Field(default_factory=lambda: {1: "person"})


class YoloOnnxDetectorConfig(OnnxDetectorConfig):
    """What the YOLO layouts share: letterboxed float input, class-aware NMS after the model.

    `input_size` is the network input's longest side for models exported with dynamic input
    dimensions (default 640); a model with a fixed input size uses its own, and a different
    `input_size` is an error.
    """

    labels: dict[int, str] = Field(default_factory=lambda: dict(enumerate(COCO_LABELS)))
    input_size: int | None = Field(None, gt=0, multiple_of=32)
    iou: float = Field(0.45, ge=0.0, le=1.0, description="NMS overlap that suppresses a box")
    max_detections: int = Field(100, ge=1)


class Yolov5OnnxDetectorConfig(YoloOnnxDetectorConfig):
    """A YOLOv5 export: output N x (5 + classes) of cx, cy, w, h, objectness, class scores.

    Example:
        >>> Yolov5OnnxDetectorConfig(model="yolov5s.onnx", keep=["person"])  # doctest: +SKIP
    """

    type: Literal["yolov5_onnx"] = "yolov5_onnx"


class Yolov8OnnxDetectorConfig(YoloOnnxDetectorConfig):
    """A YOLOv8 / YOLO11 export: output (4 + classes) x N of cx, cy, w, h, class scores (no
    objectness); the transposed N x (4 + classes) is recognised too.

    Example:
        >>> Yolov8OnnxDetectorConfig(model="yolo11n.onnx", keep=["person", "car"])  # doctest: +SKIP
    """

    type: Literal["yolov8_onnx"] = "yolov8_onnx"


def _plugin_config(value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
    """A `detector` section without `type` is the SSD; errors are located at the keys of the
    file: pydantic puts the union's tag in the path (`detector.yolov8_onnx.iou`), a level the
    YAML does not have, so it is dropped (`detector.iou`)."""
    if isinstance(value, dict):
        value = {"type": "ssd_onnx", **value}
    try:
        return handler(value)
    except ValidationError as error:
        problems = [
            InitErrorDetails(
                type=problem["type"],
                loc=problem["loc"][1:],
                input=problem["input"],
                ctx=problem.get("ctx", {}),
            )
            for problem in error.errors()
        ]
        raise ValidationError.from_exception_data(error.title, problems) from None


DetectorConfig = Annotated[
    SsdOnnxDetectorConfig | Yolov5OnnxDetectorConfig | Yolov8OnnxDetectorConfig,
    Field(discriminator="type"),
    WrapValidator(_plugin_config),
]
"""The `detector` section: one plugin's config, chosen by its `type` (default `ssd_onnx`)."""


def _intrusion() -> list[AnyZoneRuleConfig]:
    return [IntrusionConfig()]


class ZoneConfig(StrictModel):
    """A polygon in normalized image coordinates (0..1) and the rules that watch it
    (by default: intrusion by a person)."""

    name: str = Field(min_length=1, max_length=64)
    points: list[tuple[float, float]] = Field(min_length=3)
    rules: list[AnyZoneRuleConfig] = Field(default_factory=_intrusion, min_length=1)

    @field_validator("points")
    @classmethod
    def _points_normalized(cls, points: list[tuple[float, float]]) -> list[tuple[float, float]]:
        for index, (x, y) in enumerate(points):
            if not (0.0 <= x <= 1.0 and 0.0 <= y <= 1.0):
                raise ValueError(
                    f"point {index} ({x}, {y}) is outside 0..1: zone points are fractions "
                    "of the image width and height"
                )
        return points


class EventTimingConfig(StrictModel):
    """When an event ends, and how long one may run before it is continued by a new one."""

    end_after_s: float = Field(3.0, gt=0, description="object gone this long: the event ends")
    max_duration_s: float = Field(60.0, gt=0)
    cooldown_s: float = Field(
        10.0, ge=0, description="a finding that ended this recently does not start a new event"
    )


class AnalyticsConfig(StrictModel):
    events: EventTimingConfig = Field(default_factory=EventTimingConfig)
    tracker: TrackerConfig = Field(default_factory=TrackerConfig)
