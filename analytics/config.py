"""Configuration owned by the analytics stage: the detector, zones and event timing."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, field_validator

from ingest.config import StrictModel

DEFAULT_MODEL = Path(__file__).resolve().parent.parent / "models" / "person_ssdlite.onnx"


class SsdOnnxDetectorConfig(StrictModel):
    """A TensorFlow object-detection SSD exported to ONNX (NMS inside the graph).

    The default is the bundled SSDLite-MobileNetV2 person detector (class 1 = person).
    """

    type: Literal["ssd_onnx"] = "ssd_onnx"
    model: Path = DEFAULT_MODEL
    input_size: int = Field(300, gt=0)
    labels: dict[int, str] = Field(default_factory=lambda: {1: "person"})
    min_score: float = Field(0.5, ge=0.0, le=1.0)
    threads: int = Field(1, ge=1, description="onnxruntime intra-op threads per worker")

    @field_validator("model")
    @classmethod
    def _model_exists(cls, model: Path) -> Path:
        if not model.is_file():
            raise ValueError(f"model file not found: {model}")
        return model


DetectorConfig = SsdOnnxDetectorConfig


class ZoneConfig(StrictModel):
    """A polygon in normalized image coordinates (0..1) and what may not enter it."""

    name: str = Field(min_length=1, max_length=64)
    points: list[tuple[float, float]] = Field(min_length=3)
    labels: list[Annotated[str, Field(min_length=1, max_length=32)]] = Field(
        default_factory=lambda: ["person"], min_length=1
    )
    severity: Literal["low", "medium", "high"] = "high"

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


class AnalyticsConfig(StrictModel):
    events: EventTimingConfig = Field(default_factory=EventTimingConfig)
