"""Video-quality diagnosis: frozen, black, over-exposed, occluded, defocused or moved cameras.

No model: each frame is shrunk once to a small grey picture (`QualityFrame`), and small checks
judge it, each against a fixed threshold or against what it learned of the camera's normal view.
`VideoQualityMonitor` runs the checks of one camera in order of precedence (a condition that
holds explains away the ones after it: a black picture is not also reported as occluded) and
reports a condition once it has held for `min_duration_s`, and its end once it has been gone as
long, as `QualityTransition`s stamped with when the picture actually changed.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections import deque
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt
from pydantic import Field, model_validator

from common.config import StrictModel
from common.types import Frame

FROZEN_FRAME = "frozen_frame"
BLACK_IMAGE = "black_image"
OVEREXPOSED_IMAGE = "overexposed_image"
OCCLUSION = "occlusion"
DEFOCUS = "defocus"
SCENE_CHANGE = "scene_change"

LEARNING_SAMPLES = 10  # samples of clean footage a baseline or the reference is learned from
LUMA_FLOOR = 16.0  # added to the mean luma that texture is divided by, so dark views stay calm
STRUCTURE_SIGMA = 1.5  # px of the analysis picture: the blur that lets a shaking view still match
LEVELS = np.arange(256, dtype=np.float64)

FloatArray = npt.NDArray[np.floating[Any]]
NumberArray = npt.NDArray[np.number[Any]]


class CheckConfig(StrictModel):
    """What every check has: an off switch. A check that is off reports nothing but still
    explains away the conditions after it (so with `black_image` off, a camera that is dark
    at night is not reported as occluded instead)."""

    enabled: bool = True


class FrozenFrameConfig(CheckConfig):
    max_difference: float = Field(
        0.2,
        ge=0,
        le=255,
        description="the picture counts as unchanged while the mean absolute luma difference "
        "(0-255) to the previous frame stays below this in every grid cell",
    )


class BlackImageConfig(CheckConfig):
    max_mean: float = Field(20.0, ge=0, le=255, description="mean luma at most this")
    dark_level: int = Field(24, ge=0, le=255, description="a pixel at most this is dark")
    min_share: float = Field(0.9, gt=0, le=1, description="share of dark pixels at least this")


class OverexposedImageConfig(CheckConfig):
    min_mean: float = Field(220.0, ge=0, le=255, description="mean luma at least this")
    bright_level: int = Field(240, ge=0, le=255, description="a pixel at least this is bright")
    min_share: float = Field(0.8, gt=0, le=1, description="share of bright pixels at least this")


class OcclusionConfig(CheckConfig):
    flat_ratio: float = Field(
        0.4,
        gt=0,
        lt=1,
        description="a cell whose texture fell below this share of its normal is flat",
    )
    min_share: float = Field(
        0.5,
        gt=0,
        le=1,
        description="occluded when cells holding at least this share of the "
        "normal view's texture went flat",
    )


class DefocusConfig(CheckConfig):
    min_ratio: float = Field(
        0.5, gt=0, lt=1, description="defocused when sharpness is below this share of normal"
    )


class SceneChangeConfig(CheckConfig):
    min_correlation: float = Field(
        0.5,
        ge=-1,
        lt=1,
        description="a cell matches the reference when its structure correlates at least this well",
    )
    min_share: float = Field(
        0.5,
        gt=0,
        le=1,
        description="changed when cells holding at least this share of the "
        "reference's structure no longer match",
    )
    relearn_after_s: float | None = Field(
        600.0,
        gt=0,
        description="a change that lasts this long is the new normal: the change "
        "ends and everything learned is learned again; None: never",
    )


class QualityConfig(StrictModel):
    """Video-quality diagnosis of a camera: the checks, and how long a condition must last.

    Each check's key is the name of its condition. Occlusion, defocus and scene change judge
    only after `learning_s` of clean footage (no condition holding); occlusion and defocus keep
    learning the camera's normal over the last `baseline_window_s` of clean footage, while the
    scene's reference stays until a change has lasted `scene_change.relearn_after_s`.

    Example:
        >>> QualityConfig(defocus={"enabled": False}).min_duration_s
        3.0
    """

    min_duration_s: float = Field(
        3.0,
        gt=0,
        description="a condition starts once it has held this long, ends once gone this long",
    )
    learning_s: float = Field(10.0, gt=0, description="clean footage needed before judging")
    baseline_window_s: float = Field(
        300.0, gt=0, description="how far back the normal of occlusion and defocus reaches"
    )
    analysis_width: int = Field(160, ge=32, description="width of the grey analysis picture")
    grid: tuple[int, int] = Field((8, 6), description="columns and rows of analysis cells")
    black_image: BlackImageConfig = Field(default_factory=BlackImageConfig)
    overexposed_image: OverexposedImageConfig = Field(default_factory=OverexposedImageConfig)
    occlusion: OcclusionConfig = Field(default_factory=OcclusionConfig)
    frozen_frame: FrozenFrameConfig = Field(default_factory=FrozenFrameConfig)
    scene_change: SceneChangeConfig = Field(default_factory=SceneChangeConfig)
    defocus: DefocusConfig = Field(default_factory=DefocusConfig)

    @model_validator(mode="after")
    def _check_sizes(self) -> QualityConfig:
        columns, rows = self.grid
        if columns < 1 or rows < 1:
            raise ValueError("grid needs at least one column and one row")
        if self.analysis_width < 4 * columns:
            raise ValueError("analysis_width leaves grid cells narrower than 4 px")
        if self.baseline_window_s < self.learning_s:
            raise ValueError("baseline_window_s must be >= learning_s")
        return self


def weighted_share(cells: npt.NDArray[np.bool_], weights: FloatArray) -> float:
    """The share of the total weight that the selected cells hold (0 when there is none).

    Example:
        >>> weighted_share(np.array([True, False, True]), np.array([1.0, 2.0, 1.0]))
        0.5
    """
    total = float(weights.sum())
    return float(weights[cells].sum()) / total if total > 0 else 0.0


@dataclass(frozen=True, eq=False)  # no equality: arrays do not compare to one bool
class CellStatistics:
    """A picture and the mean and variance of each of its grid cells (`Grid.statistics`),
    kept for a picture that many frames are compared with."""

    image: NumberArray
    means: FloatArray
    variances: FloatArray

    @cached_property
    def spreads(self) -> FloatArray:
        """The standard deviation of each cell."""
        return np.sqrt(self.variances)


class Grid:
    """Splits a picture into `columns` x `rows` equal cells; the few pixels left over at the
    right and bottom edges belong to none.

    Example:
        >>> Grid(2, 1).means(np.array([[0, 2, 4, 6, 9]], np.float32)).tolist()
        [[1.0, 5.0]]
    """

    def __init__(self, columns: int, rows: int) -> None:
        self.columns = columns
        self.rows = rows

    def means(self, image: NumberArray) -> FloatArray:
        """The mean of each cell, as a rows x columns array."""
        height = image.shape[0] // self.rows * self.rows
        width = image.shape[1] // self.columns * self.columns
        cropped = image[:height, :width].astype(np.float64)
        # An area resize by whole factors averages exactly the pixels of each cell.
        cells = cv2.resize(cropped, (self.columns, self.rows), interpolation=cv2.INTER_AREA)
        return cells.reshape(self.rows, self.columns).astype(np.float64, copy=False)

    def statistics(self, image: NumberArray) -> CellStatistics:
        """`image` with the mean and variance of each cell."""
        means = self.means(image)
        variances = np.maximum(self.means(image * image) - means * means, 0.0)
        return CellStatistics(image, means, variances)

    def correlations(self, image: NumberArray, reference: CellStatistics) -> FloatArray:
        """Each cell's zero-mean normalized cross-correlation of `image` with the `reference`
        picture (-1..1; 0 where either is flat)."""
        current = self.statistics(image)
        covariance = self.means(image * reference.image) - current.means * reference.means
        spread = np.sqrt(current.variances * reference.variances)
        return np.divide(covariance, spread, out=np.zeros_like(covariance), where=spread > 1e-6)


class QualityFrame:
    """What the checks look at in one frame: a small grey picture and features of it, each
    computed at most once and only if a check asks for it.

    Example:
        >>> image = np.full((480, 640, 3), 200, np.uint8)
        >>> features = QualityFrame(Frame("gate", image, 5.0), width=160, grid=Grid(8, 6))
        >>> features.luma.shape, round(features.mean, 1), features.sharpness
        ((120, 160), 200.0, 0.0)
    """

    def __init__(self, frame: Frame, width: int, grid: Grid) -> None:
        height, full_width = frame.shape
        width = min(width, full_width)
        grey = cv2.cvtColor(frame.image, cv2.COLOR_BGR2GRAY)
        size = (width, max(1, round(height * width / full_width)))
        small = cv2.resize(grey, size, interpolation=cv2.INTER_AREA)
        self.luma = small.astype(np.uint8, copy=False)
        self.wall_time = frame.wall_time
        self.grid = grid

    @cached_property
    def histogram(self) -> FloatArray:
        """The share of pixels at each luma level 0..255."""
        counts = cv2.calcHist([self.luma], [0], None, [256], [0, 256]).ravel()
        return counts.astype(np.float64) / self.luma.size

    @cached_property
    def mean(self) -> float:
        return float(self.histogram @ LEVELS)

    @cached_property
    def gradient(self) -> FloatArray:
        """The magnitude of the luma gradient (Sobel)."""
        luma = self.luma.astype(np.float32)
        dx = cv2.Sobel(luma, cv2.CV_32F, 1, 0)
        dy = cv2.Sobel(luma, cv2.CV_32F, 0, 1)
        return cv2.magnitude(dx, dy).astype(np.float32, copy=False)

    @cached_property
    def energy(self) -> FloatArray:
        """The squared gradient: how much detail there is, and where."""
        return self.gradient * self.gradient

    @cached_property
    def texture(self) -> FloatArray:
        """Each cell's root-mean-square gradient relative to the picture's brightness, so that
        dimmer light does not look like lost texture while a blur or a cover does."""
        return np.sqrt(self.grid.means(self.energy)) / (self.mean + LUMA_FLOOR)

    @cached_property
    def sharpness(self) -> float:
        """Energy of the Laplacian over energy of the gradient: fine detail relative to all
        detail, so it drops with defocus but not with contrast."""
        laplacian = cv2.Laplacian(self.luma.astype(np.float32), cv2.CV_32F)
        detail = float(np.mean(self.energy))
        return float(np.mean(laplacian * laplacian)) / detail if detail > 0 else 0.0

    @cached_property
    def structure(self) -> FloatArray:
        """The gradient slightly blurred: where the edges are, tolerant of a pixel of shake."""
        blurred = cv2.GaussianBlur(self.gradient, (0, 0), STRUCTURE_SIGMA)
        return blurred.astype(np.float32, copy=False)


class RunningMedian:
    """The element-wise median of the last `size` samples, taken at most one every `every_s`
    seconds; `ready` once it holds `ready_after` samples.

    Example:
        >>> median = RunningMedian(every_s=1.0, size=3, ready_after=2)
        >>> for t, value in [(0.0, 5.0), (0.5, 99.0), (1.0, 7.0), (2.0, 6.0), (3.0, 1.0)]:
        ...     if median.wants(t):
        ...         median.add(np.array(value), t)
        >>> median.ready, float(median.value)
        (True, 6.0)
    """

    def __init__(self, every_s: float, size: int, ready_after: int) -> None:
        self.every_s = every_s
        self.ready_after = ready_after
        self._samples: deque[FloatArray] = deque(maxlen=size)
        self._next_at = -math.inf
        self._value: FloatArray | None = None

    @property
    def ready(self) -> bool:
        return len(self._samples) >= self.ready_after

    @property
    def value(self) -> FloatArray:
        if self._value is None:
            raise ValueError("no samples yet")
        return self._value

    def wants(self, at: float) -> bool:
        return at >= self._next_at

    def add(self, sample: FloatArray, at: float) -> None:
        self._samples.append(sample)
        self._next_at = at + self.every_s
        self._value = np.asarray(np.median(np.stack(self._samples), axis=0))

    def clear(self) -> None:
        self._samples.clear()
        self._next_at = -math.inf
        self._value = None


class QualityCheck(ABC):
    """One condition: `update` says whether it holds in a frame; `learn` is given the frames
    in which no condition holds; `reset` forgets what was learned."""

    name: str
    relearn_after_s: float | None = None  # held this long, the condition is the new normal

    @abstractmethod
    def update(self, frame: QualityFrame) -> bool: ...

    def learn(self, frame: QualityFrame) -> None:  # noqa: B027  (most checks learn nothing)
        """Take `frame` as normal footage."""

    def reset(self) -> None:  # noqa: B027
        """Forget what was learned (the view changed for good, or the frame size did)."""


class ExposureCheck(QualityCheck):
    """A black (`bright=False`) or over-exposed (`bright=True`) picture: the mean luma and a
    large share of the pixels beyond their limits. Over-exposure is judged as the darkness of
    the inverted picture.

    Example:
        >>> black = ExposureCheck("black_image", mean_limit=20, level=24, min_share=0.9)
        >>> image = np.full((48, 64, 3), 10, np.uint8)
        >>> black.update(QualityFrame(Frame("gate", image, 0.0), 64, Grid(8, 6)))
        True
    """

    def __init__(
        self, name: str, mean_limit: float, level: int, min_share: float, bright: bool = False
    ) -> None:
        self.name = name
        self.bright = bright
        self.mean_limit = 255 - mean_limit if bright else mean_limit
        self.level = 255 - level if bright else level
        self.min_share = min_share

    def update(self, frame: QualityFrame) -> bool:
        shares = frame.histogram[::-1] if self.bright else frame.histogram
        mean = 255 - frame.mean if self.bright else frame.mean
        return mean <= self.mean_limit and float(shares[: self.level + 1].sum()) >= self.min_share


class FrozenFrameCheck(QualityCheck):
    """The picture has not changed since the previous frame in any grid cell.

    Example:
        >>> frozen = FrozenFrameCheck(FrozenFrameConfig())
        >>> still = np.full((48, 64, 3), 90, np.uint8)
        >>> [frozen.update(QualityFrame(Frame("gate", still, t), 64, Grid(8, 6))) for t in (0, 1)]
        [False, True]
    """

    name = FROZEN_FRAME

    def __init__(self, config: FrozenFrameConfig) -> None:
        self.config = config
        self._previous: npt.NDArray[np.uint8] | None = None

    def update(self, frame: QualityFrame) -> bool:
        previous, self._previous = self._previous, frame.luma
        if previous is None:
            return False
        change = frame.grid.means(cv2.absdiff(frame.luma, previous))
        return float(change.max()) < self.config.max_difference

    def reset(self) -> None:
        self._previous = None


class LearnedCheck(QualityCheck):
    """A check that judges each frame against the median of a measure over normal footage."""

    def __init__(self, normal: RunningMedian) -> None:
        self.normal = normal

    def update(self, frame: QualityFrame) -> bool:
        return self.normal.ready and self.departs(frame, self.normal.value)

    def learn(self, frame: QualityFrame) -> None:
        if self.normal.wants(frame.wall_time):
            self.normal.add(self.measure(frame), frame.wall_time)

    def reset(self) -> None:
        self.normal.clear()

    @abstractmethod
    def measure(self, frame: QualityFrame) -> FloatArray:
        """What is learned of a normal frame."""

    @abstractmethod
    def departs(self, frame: QualityFrame, normal: FloatArray) -> bool:
        """Whether `frame` is too far from `normal`, the median of the learned measures."""


class OcclusionCheck(LearnedCheck):
    """Most of the view lost its texture: cells holding at least `min_share` of the normal
    texture fell below `flat_ratio` of their normal (a covered, sprayed or blocked lens)."""

    name = OCCLUSION

    def __init__(self, config: OcclusionConfig, normal: RunningMedian) -> None:
        super().__init__(normal)
        self.config = config

    def measure(self, frame: QualityFrame) -> FloatArray:
        return frame.texture

    def departs(self, frame: QualityFrame, normal: FloatArray) -> bool:
        flat = frame.texture < self.config.flat_ratio * normal
        return weighted_share(flat, normal) >= self.config.min_share


class DefocusCheck(LearnedCheck):
    """Sharpness fell below `min_ratio` of the camera's normal."""

    name = DEFOCUS

    def __init__(self, config: DefocusConfig, normal: RunningMedian) -> None:
        super().__init__(normal)
        self.config = config

    def measure(self, frame: QualityFrame) -> FloatArray:
        return np.array(frame.sharpness)

    def departs(self, frame: QualityFrame, normal: FloatArray) -> bool:
        return frame.sharpness < self.config.min_ratio * float(normal)


class SceneChangeCheck(QualityCheck):
    """The view no longer matches the reference learned at the start: cells holding at least
    `min_share` of the reference's structure (edges) no longer correlate with it. The
    reference is the median structure of the first clean footage (`samples`), learned once
    and again after a `reset`; it is fixed in between, so its cells are worked out once."""

    name = SCENE_CHANGE

    def __init__(self, config: SceneChangeConfig, samples: RunningMedian) -> None:
        self.config = config
        self.relearn_after_s = config.relearn_after_s
        self.samples = samples
        self.reference: CellStatistics | None = None  # once `samples` is ready

    def update(self, frame: QualityFrame) -> bool:
        if self.reference is None:
            return False
        correlations = frame.grid.correlations(frame.structure, self.reference)
        lost = correlations < self.config.min_correlation
        return weighted_share(lost, self.reference.spreads) >= self.config.min_share

    def learn(self, frame: QualityFrame) -> None:
        if self.reference is None and self.samples.wants(frame.wall_time):
            self.samples.add(frame.structure, frame.wall_time)
            if self.samples.ready:
                self.reference = frame.grid.statistics(self.samples.value)

    def reset(self) -> None:
        self.samples.clear()
        self.reference = None


@dataclass(frozen=True, slots=True)
class QualityTransition:
    """A condition of the monitor's camera started or ended; `at` is the wall time of the
    first frame that showed the change (it is reported `min_duration_s` later), or, for a
    scene change accepted as the new normal, of the frame that ended it."""

    condition: str
    started: bool
    at: float


class Sustained:
    """A condition that counts only once it has held for `hold_s`, and ends only once it has
    been gone for `hold_s`: brief flickers either way are ignored.

    Example:
        >>> frozen = Sustained("frozen_frame", hold_s=2.0)
        >>> [frozen.update(holds, t) for holds, t in [(True, 0.0), (True, 1.0), (True, 2.0)]]
        [None, None, QualityTransition(condition='frozen_frame', started=True, at=0.0)]
    """

    def __init__(self, condition: str, hold_s: float) -> None:
        self.condition = condition
        self.hold_s = hold_s
        self.since: float | None = None  # when the confirmed condition started
        self._flipping_since: float | None = None  # when the frames began to disagree

    @property
    def active(self) -> bool:
        return self.since is not None

    def update(self, holds: bool, at: float) -> QualityTransition | None:
        if holds == self.active:
            self._flipping_since = None
            return None
        if self._flipping_since is None:
            self._flipping_since = at
        if at - self._flipping_since < self.hold_s:
            return None
        return self._flip(self._flipping_since)

    def end(self, at: float) -> QualityTransition:
        """End the condition now, whatever the frames say."""
        return self._flip(at)

    def _flip(self, at: float) -> QualityTransition:
        self.since = None if self.active else at
        self._flipping_since = None
        return QualityTransition(self.condition, self.active, at)


def build_checks(config: QualityConfig) -> list[tuple[QualityCheck, CheckConfig]]:
    """All checks with their config, in order of precedence: one that holds explains away
    those after it."""
    every_s = config.learning_s / LEARNING_SAMPLES
    window = max(LEARNING_SAMPLES, math.ceil(config.baseline_window_s / every_s))

    def baseline() -> RunningMedian:
        return RunningMedian(every_s, window, LEARNING_SAMPLES)

    black, bright = config.black_image, config.overexposed_image
    reference = RunningMedian(every_s, LEARNING_SAMPLES, LEARNING_SAMPLES)
    return [
        (ExposureCheck(BLACK_IMAGE, black.max_mean, black.dark_level, black.min_share), black),
        (
            ExposureCheck(
                OVEREXPOSED_IMAGE, bright.min_mean, bright.bright_level, bright.min_share, True
            ),
            bright,
        ),
        (OcclusionCheck(config.occlusion, baseline()), config.occlusion),
        (FrozenFrameCheck(config.frozen_frame), config.frozen_frame),
        (SceneChangeCheck(config.scene_change, reference), config.scene_change),
        (DefocusCheck(config.defocus, baseline()), config.defocus),
    ]


class VideoQualityMonitor:
    """Diagnoses one camera's picture: call `update` with each analysed frame; it returns the
    conditions that started or ended.

    Checks run in order of precedence (black, over-exposed, occlusion, frozen, scene change,
    defocus); once one holds, those after it are not judged in that frame. Frames in which
    nothing holds teach the learning checks the camera's normal view. A change of frame size
    makes the monitor learn from scratch.

    Example:
        >>> monitor = VideoQualityMonitor(QualityConfig(min_duration_s=2.0))
        >>> black = np.zeros((480, 640, 3), np.uint8)
        >>> [monitor.update(Frame("gate", black, t)) for t in (10.0, 11.0, 12.0)]
        [[], [], [QualityTransition(condition='black_image', started=True, at=10.0)]]
        >>> monitor.active
        frozenset({'black_image'})
    """

    def __init__(self, config: QualityConfig) -> None:
        self.config = config
        self.grid = Grid(*config.grid)
        checks = build_checks(config)
        # Checks after the last enabled one would explain away nothing that is reported.
        last = max((i for i, (_, c) in enumerate(checks) if c.enabled), default=-1)
        self.checks = [check for check, _ in checks[: last + 1]]
        self.conditions = {
            check.name: Sustained(check.name, config.min_duration_s)
            for check, check_config in checks
            if check_config.enabled
        }
        self._shape: tuple[int, int] | None = None

    @property
    def active(self) -> frozenset[str]:
        """The conditions that hold now."""
        return frozenset(name for name, c in self.conditions.items() if c.active)

    def update(self, frame: Frame) -> list[QualityTransition]:
        if frame.shape != self._shape:
            self._shape = frame.shape
            self._forget()
        features = QualityFrame(frame, self.config.analysis_width, self.grid)
        changes: list[QualityTransition] = []
        explained = False
        for check in self.checks:
            holds = not explained and check.update(features)
            explained = explained or holds
            condition = self.conditions.get(check.name)
            change = condition.update(holds, frame.wall_time) if condition else None
            if change is not None:
                changes.append(change)
        if not explained:
            for check in self.checks:
                check.learn(features)
        return changes + self._relearn_settled_changes(frame.wall_time)

    def _relearn_settled_changes(self, now: float) -> list[QualityTransition]:
        for check in self.checks:
            condition = self.conditions.get(check.name)
            if (
                condition is not None
                and condition.since is not None
                and check.relearn_after_s is not None
                and now - condition.since >= check.relearn_after_s
            ):
                self._forget()
                return [condition.end(now)]
        return []

    def _forget(self) -> None:
        for check in self.checks:
            check.reset()
