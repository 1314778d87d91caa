"""The detector plugin interface: one subclass per config `type`."""

from __future__ import annotations

import inspect
from abc import ABC, abstractmethod
from typing import Any, ClassVar

from analytics.config import DetectorConfig
from common.types import BGRImage, Detection


class Detector(ABC):
    """Finds objects in a picture. Concrete subclasses register under `type_key`, their
    config's `type`; abstract ones (shared code of a family of layouts) do not."""

    type_key: ClassVar[str]
    registry: ClassVar[dict[str, type[Detector]]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if not inspect.isabstract(cls):
            Detector.registry[cls.type_key] = cls

    @abstractmethod
    def detect(self, image: BGRImage) -> list[Detection]:
        """Detections in `image` (BGR, any size), boxes normalized to its width and height."""


def create_detector(config: DetectorConfig) -> Detector:
    """The detector plugin that `config.type` names, built from `config`.

    Example:
        >>> from analytics.config import SsdOnnxDetectorConfig
        >>> type(create_detector(SsdOnnxDetectorConfig())).__name__
        'SsdOnnxDetector'
    """
    plugin: type[Detector] = Detector.registry[config.type]
    return plugin(config)  # type: ignore[call-arg]
