"""Multi-object tracking: one camera's detections joined over time into tracks with stable ids.

ByteTrack's scheme on Kalman-filtered boxes, timed in seconds rather than frames because the
frame rate varies and the motion gate skips frames. Written here rather than taken from PyPI:
`trackers` (Apache-2.0, the ByteTrack that left `supervision`) needs supervision, scipy,
matplotlib and the non-headless opencv-python that clashes with our cv2, and matches across
classes; `norfair` needs numpy<2 and `bytetracker` torch.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence

import numpy as np
import numpy.typing as npt
from pydantic import Field, model_validator

from common.config import StrictModel
from common.types import Box, Detection, Track

FloatArray = npt.NDArray[np.float64]

# Noise of the constant-velocity model, as fractions of the box's width (x, w) or height (y, h):
# ByteTrack's per-frame figures at 30 fps, restated per second.
POSITION_NOISE = 0.25  # random walk of centre and size, per square root of a second
VELOCITY_NOISE = 1.0  # random walk of their velocities (per second), per square root of a second
MEASUREMENT_NOISE = 0.05  # the detector's box error
INITIAL_VELOCITY_STD = 2.0  # a new track's velocity is unknown: up to about 2 box sizes a second
MIN_SIZE = 1e-3  # a coasting box's width and height never shrink below this
CHI2_95_4DOF = 9.4877  # the gate of the Mahalanobis distance: 95 % of true matches fall inside


class TrackerConfig(StrictModel):
    """How a camera's tracker joins detections into tracks; the defaults suit ~5 fps.

    A detector feeding the tracker should report scores down to `low_score`: detections between
    `low_score` and `high_score` keep a track alive through blur and partial occlusion. The IoU
    thresholds sit below ByteTrack's (0.2 and 0.5, chosen at 30 fps) because at 5 fps objects
    move six times farther between frames: on ten seconds of vtest.avi they give 9 ids, not 16.

    Example:
        >>> TrackerConfig(max_lost_s=5).min_hits
        2
    """

    high_score: float = Field(
        0.5, gt=0, le=1, description="detections this sure are matched first and may start tracks"
    )
    low_score: float = Field(
        0.1, ge=0, le=1, description="weaker detections only extend a track seen at the last update"
    )
    match_iou: float = Field(
        0.1, gt=0, le=1, description="least overlap of a track's predicted box and a detection"
    )
    low_match_iou: float = Field(0.3, gt=0, le=1, description="the same for weak detections")
    max_lost_s: float = Field(2.0, gt=0, description="a track unseen for longer ends")
    min_hits: int = Field(2, ge=1, description="sightings in a row before a track gets an id")
    history: int = Field(50, ge=1, description="(time, box) entries kept per track")

    @model_validator(mode="after")
    def _low_below_high(self) -> TrackerConfig:
        if self.low_score > self.high_score:
            raise ValueError(f"low_score {self.low_score} is above high_score {self.high_score}")
        return self


def _size(z: FloatArray) -> FloatArray:
    """(w, h, w, h) of a (cx, cy, w, h) vector: what each coordinate's noise scales with."""
    return np.array([z[2], z[3], z[2], z[3]])


class BoxKalman:
    """A constant-velocity Kalman filter of a box: (cx, cy, w, h) in normalized units and their
    velocities per second, with noise proportional to the box's size as in ByteTrack.

    The noise being diagonal, ByteTrack's eight-state filter splits exactly into four
    independent (value, velocity) pairs, one per coordinate: it is kept so, as a few array
    operations on the pairs' 2x2 covariances (value variance, covariance, velocity variance).

    Example:
        >>> kf = BoxKalman(Box(0.0, 0.0, 0.1, 0.3))
        >>> kf.predict(dt=1.0)
        >>> kf.update(Box(0.1, 0.0, 0.2, 0.3))  # it moved one width in a second
        >>> kf.predict(dt=1.0)
        >>> [round(v, 2) for v in kf.box.to_list()]
        [0.2, 0.0, 0.3, 0.3]
    """

    def __init__(self, box: Box) -> None:
        self.value = _measurement(box)
        self.velocity: FloatArray = np.zeros(4)
        size = _size(self.value)
        self.value_var: FloatArray = (2 * MEASUREMENT_NOISE * size) ** 2
        self.covariance: FloatArray = np.zeros(4)
        self.velocity_var: FloatArray = (INITIAL_VELOCITY_STD * size) ** 2

    def predict(self, dt: float) -> None:
        """Moves the state `dt` seconds ahead."""
        size = _size(self.value)
        value_var, covariance, velocity_var = self.value_var, self.covariance, self.velocity_var
        self.value = self.value + dt * self.velocity
        self.value_var = (
            value_var
            + dt * (2 * covariance + dt * velocity_var)
            + (POSITION_NOISE * size) ** 2 * dt
        )
        self.covariance = covariance + dt * velocity_var
        self.velocity_var = velocity_var + (VELOCITY_NOISE * size) ** 2 * dt

    def update(self, box: Box) -> None:
        """Corrects the state with a measured box."""
        z = _measurement(box)
        innovation_var = self.value_var + (MEASUREMENT_NOISE * _size(z)) ** 2
        value_gain = self.value_var / innovation_var
        velocity_gain = self.covariance / innovation_var
        residual = z - self.value
        self.value = self.value + value_gain * residual
        self.velocity = self.velocity + velocity_gain * residual
        self.velocity_var = self.velocity_var - velocity_gain * self.covariance
        self.covariance = self.covariance * (1 - value_gain)
        self.value_var = self.value_var * (1 - value_gain)

    def hold_size(self) -> None:
        """Stops the size from changing: unseen, a box would otherwise grow or shrink unchecked."""
        self.velocity[2:] = 0.0

    @property
    def box(self) -> Box:
        """The filtered box, clipped to the picture."""
        cx, cy, w, h = (float(v) for v in self.value)
        w, h = max(w, MIN_SIZE) / 2, max(h, MIN_SIZE) / 2
        return Box(
            min(max(cx - w, 0.0), 1.0),
            min(max(cy - h, 0.0), 1.0),
            min(max(cx + w, 0.0), 1.0),
            min(max(cy + h, 0.0), 1.0),
        )


def _measurement(box: Box) -> FloatArray:
    return np.array(
        [(box.x1 + box.x2) / 2, (box.y1 + box.y2) / 2, box.x2 - box.x1, box.y2 - box.y1]
    )


def iou_matrix(a: FloatArray, b: FloatArray) -> FloatArray:
    """Intersection over union of each box of `a` (n, 4) with each of `b` (m, 4), as (n, m).

    Example:
        >>> iou_matrix(np.array([[0.0, 0.0, 0.5, 0.5]]), np.array([[0.25, 0.0, 0.75, 0.5]]))
        array([[0.33333333]])
    """
    x1 = np.maximum(a[:, None, 0], b[None, :, 0])
    y1 = np.maximum(a[:, None, 1], b[None, :, 1])
    x2 = np.minimum(a[:, None, 2], b[None, :, 2])
    y2 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x2 - x1, 0.0, None) * np.clip(y2 - y1, 0.0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    union = area_a[:, None] + area_b[None, :] - inter
    result: FloatArray = np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)
    return result


def greedy_match(iou: FloatArray, min_iou: float) -> list[tuple[int, int]]:
    """(row, column) pairs taken highest IoU first, each row and column at most once, none
    below `min_iou`.

    Optimal assignment (Hungarian) differs from this only when one detection overlaps two
    predicted boxes about equally and the best pairing of one forces a worse one elsewhere:
    with the tens of objects a surveillance camera sees and Kalman-predicted boxes, that is
    rare, and scipy would be a new dependency for it.

    Example:
        >>> greedy_match(np.array([[0.9, 0.5], [0.8, 0.1]]), min_iou=0.2)
        [(0, 0)]
    """
    rows, cols = np.nonzero(iou >= min_iou)
    order = np.argsort(-iou[rows, cols], kind="stable")
    used_rows: set[int] = set()
    used_cols: set[int] = set()
    pairs: list[tuple[int, int]] = []
    for k in order:
        row, col = int(rows[k]), int(cols[k])
        if row not in used_rows and col not in used_cols:
            used_rows.add(row)
            used_cols.add(col)
            pairs.append((row, col))
    return pairs


class _Tracklet:
    """A track's running state: its filter, counters and history. `id` is None until the
    track is confirmed."""

    def __init__(self, detection: Detection, t: float, history: int) -> None:
        self.kalman = BoxKalman(detection.box)
        self.label = detection.label
        self.score = detection.score
        self.id: int | None = None
        self.first_seen = self.last_seen = self.updated_at = t
        self.hits = 1
        self.missed = 0  # updates in a row that did not see it
        self.history: deque[tuple[float, Box]] = deque([(t, self.kalman.box)], maxlen=history)

    def predict(self, t: float) -> None:
        if t == self.updated_at:
            return  # already there (predicted for the gate, then updated)
        if self.missed:
            self.kalman.hold_size()
        self.kalman.predict(max(0.0, t - self.updated_at))
        self.updated_at = t

    def observe(self, detection: Detection, t: float) -> None:
        self.kalman.update(detection.box)
        self.score = detection.score
        self.last_seen = t
        self.hits += 1
        self.missed = 0
        self.history.append((t, self.kalman.box))

    def snapshot(self) -> Track:
        """The track as last seen, or, when unseen since, where it is expected now."""
        assert self.id is not None
        return Track(
            id=self.id,
            label=self.label,
            box=self.kalman.box if self.updated_at > self.last_seen else self.history[-1][1],
            score=self.score,
            first_seen=self.first_seen,
            last_seen=self.last_seen,
            hits=self.hits,
            history=tuple(self.history),
        )


def _overlap(tracks: Sequence[_Tracklet], detections: Sequence[Detection]) -> FloatArray:
    """IoU of each track's predicted box with each detection's box."""
    return iou_matrix(
        np.array([track.kalman.box.to_list() for track in tracks]),
        np.array([d.box.to_list() for d in detections]),
    )


def _closeness(tracks: Sequence[_Tracklet], detections: Sequence[Detection]) -> FloatArray:
    """How far inside its track's gate each detection lies: the 95 % chi-square bound less the
    squared Mahalanobis distance of the detection from the track's predicted state (negative
    outside). DeepSORT's gating distance: it finds an object that moved farther than its box
    between two looks, which IoU cannot, as when the gate skips frames."""
    values = np.array([track.kalman.value for track in tracks])
    variances = np.array(
        [
            track.kalman.value_var + (MEASUREMENT_NOISE * _size(track.kalman.value)) ** 2
            for track in tracks
        ]
    )
    measured = np.array([_measurement(d.box) for d in detections])
    distance = ((measured[None, :, :] - values[:, None, :]) ** 2 / variances[:, None, :]).sum(-1)
    result: FloatArray = CHI2_95_4DOF - distance
    return result


def _associate(
    tracks: Sequence[_Tracklet],
    detections: Sequence[Detection],
    similarity: Callable[[Sequence[_Tracklet], Sequence[Detection]], FloatArray],
    least: float,
) -> tuple[list[tuple[_Tracklet, Detection]], list[_Tracklet], list[Detection]]:
    """Pairs of the same label, most similar first and none below `least`, then the tracks
    and the detections left over."""
    if not tracks or not detections:
        return [], list(tracks), list(detections)
    same_label = np.array([[track.label == d.label for d in detections] for track in tracks])
    pairs = greedy_match(np.where(same_label, similarity(tracks, detections), -np.inf), least)
    matched_rows = {row for row, _ in pairs}
    matched_cols = {col for _, col in pairs}
    return (
        [(tracks[row], detections[col]) for row, col in pairs],
        [track for row, track in enumerate(tracks) if row not in matched_rows],
        [d for col, d in enumerate(detections) if col not in matched_cols],
    )


class Tracker:
    """Follows one camera's objects: call `update` with each analysed frame's detections.

    Association is ByteTrack's: confident detections (`high_score` and up) are matched by IoU
    to the confirmed tracks' predicted boxes first; weak ones (from `low_score`) then extend the
    tracks still unmatched that were seen at the last update; the confident ones left over
    extend tentative tracks or start new ones. Only boxes of the same label are ever matched.
    A tentative track that misses an update ends; one seen `min_hits` times in a row is
    confirmed and gets the camera's next id. A confirmed track unseen for more than
    `max_lost_s` ends, so an object that comes back later gets a new id.

    Example:
        >>> tracker = Tracker(TrackerConfig(min_hits=2))
        >>> walker = [Detection(Box(0.1 + x, 0.2, 0.2 + x, 0.6), 0.9, "person")
        ...           for x in (0.0, 0.02, 0.04)]
        >>> tracker.update([walker[0]], t=0.0)
        []
        >>> [(t.id, t.hits) for t in tracker.update([walker[1]], t=0.2)]
        [(1, 2)]
        >>> [(t.id, t.hits) for t in tracker.update([walker[2]], t=0.4)]
        [(1, 3)]
    """

    def __init__(self, config: TrackerConfig) -> None:
        self.config = config
        self._tracks: list[_Tracklet] = []
        self._last_id = 0

    def predict(self, t: float) -> list[Track]:
        """Where the confirmed tracks are expected at `t`: for frames the detector skipped.
        Nothing is counted as missed."""
        live = [
            tr
            for tr in self._tracks
            if tr.id is not None and t - tr.last_seen <= self.config.max_lost_s
        ]
        for track in live:
            track.predict(t)
        return [tr.snapshot() for tr in live]

    def tentative(self) -> list[Box]:
        """Where the tracks not yet confirmed were last seen: one more sighting confirms them."""
        return [tr.history[-1][1] for tr in self._tracks if tr.id is None]

    def update(
        self, detections: list[Detection], t: float, examined: Sequence[Box] | None = None
    ) -> list[Track]:
        """The confirmed tracks in this frame, taken at wall-clock time `t` (seconds).

        With `examined` (the parts of the frame the detector looked at), a track expected
        elsewhere is not missed, only predicted, and is returned with the tracks seen."""
        config = self.config
        self._tracks = [tr for tr in self._tracks if t - tr.last_seen <= config.max_lost_s]
        for track in self._tracks:
            track.predict(t)
        high = [d for d in detections if d.score >= config.high_score]
        low = [d for d in detections if config.low_score <= d.score < config.high_score]
        confirmed = [tr for tr in self._tracks if tr.id is not None]
        tentative = [tr for tr in self._tracks if tr.id is None]

        first, unmatched, high_left = _associate(confirmed, high, _overlap, config.match_iou)
        far, unmatched, high_left = _associate(unmatched, high_left, _closeness, 0.0)
        recent = [tr for tr in unmatched if tr.missed == 0]
        weak, _, _ = _associate(recent, low, _overlap, config.low_match_iou)
        new, pending, high_left = _associate(tentative, high_left, _overlap, config.match_iou)
        new_far, _, fresh = _associate(pending, high_left, _closeness, 0.0)

        pairs = first + far + weak + new + new_far
        matched = {id(track) for track, _ in pairs}
        for track in self._tracks:
            if id(track) not in matched and _looked_at(track.kalman.box, examined):
                track.missed += 1
        for track, detection in pairs:
            track.observe(detection, t)
        self._tracks = [tr for tr in self._tracks if tr.id is not None or tr.missed == 0]
        self._tracks += [_Tracklet(d, t, config.history) for d in fresh]
        for track in self._tracks:
            if track.id is None and track.hits >= config.min_hits:
                self._last_id += 1
                track.id = self._last_id
        return [tr.snapshot() for tr in self._tracks if tr.id is not None and tr.missed == 0]


def _looked_at(box: Box, examined: Sequence[Box] | None) -> bool:
    """The detector looked where `box`'s centre is (or at the whole frame)."""
    if examined is None:
        return True
    cx, cy = (box.x1 + box.x2) / 2, (box.y1 + box.y2) / 2
    return any(r.x1 <= cx <= r.x2 and r.y1 <= cy <= r.y2 for r in examined)
