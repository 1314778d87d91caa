"""Test clips: real footage sampled at the analytics rate and edited to show a camera's faults."""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import av
import cv2
import numpy as np
import numpy.typing as npt

from common.types import BGRImage, Frame

FPS = 5.0
START = 1_700_000_000.0  # wall time of a clip's first frame

Edit = Callable[[BGRImage], BGRImage]


def read_footage(
    path: Path, size: tuple[int, int] = (640, 480), fps: float = FPS
) -> list[BGRImage]:
    """The pictures of `path` at `fps` (picked by their timestamps), scaled to `size`."""
    pictures: list[BGRImage] = []
    next_time = 0.0
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            if frame.time is None or frame.time + 1e-6 < next_time:
                continue
            next_time += 1.0 / fps
            pictures.append(
                as_picture(frame.to_ndarray(format="bgr24", width=size[0], height=size[1]))
            )
    return pictures


class Clip:
    """Pictures at `fps`, edited lazily: an edit returns a new clip, and a picture is made
    only when the clip is played, so long edited clips cost no memory.

    Example:
        >>> grey = Clip.of([np.full((4, 4, 3), v, np.uint8) for v in range(10)])
        >>> clip = grey.frozen(0.4, 1.0).edited(lambda p: p // 2, start_s=1.6)
        >>> [int(f.image[0, 0, 0]) for f in clip.frames()]
        [0, 1, 2, 2, 2, 5, 6, 7, 4, 4]
    """

    def __init__(self, length: int, picture: Callable[[int], BGRImage], fps: float = FPS) -> None:
        self.length = length
        self.picture = picture
        self.fps = fps

    @classmethod
    def of(cls, pictures: Sequence[BGRImage]) -> Clip:
        return cls(len(pictures), pictures.__getitem__)

    def edited(self, edit: Edit, start_s: float = 0.0, end_s: float = math.inf) -> Clip:
        """`edit` applied to the pictures from `start_s` to `end_s`."""
        return self._replaced(start_s, end_s, lambda index, _: edit(self.picture(index)))

    def frozen(self, start_s: float, end_s: float) -> Clip:
        """The picture at `start_s` repeated until `end_s`."""
        return self._replaced(start_s, end_s, lambda _, first: self.picture(first))

    def spliced(self, other: Clip, start_s: float, end_s: float = math.inf) -> Clip:
        """`other`'s pictures of the same moments (looped if it is shorter) from `start_s`
        to `end_s`."""
        return self._replaced(start_s, end_s, lambda index, _: other.picture(index % other.length))

    def cut(self, end_s: float) -> Clip:
        """The first `end_s` seconds."""
        return Clip(min(self.length, self._index(end_s)), self.picture, self.fps)

    def frames(self) -> Iterator[Frame]:
        for index in range(self.length):
            yield Frame("cam", self.picture(index), START + index / self.fps)

    def _replaced(
        self, start_s: float, end_s: float, picture: Callable[[int, int], BGRImage]
    ) -> Clip:
        """A clip whose pictures from `start_s` to `end_s` are `picture(index, first index)`."""
        first, stop = self._index(start_s), self._index(end_s)

        def make(index: int) -> BGRImage:
            return picture(index, first) if first <= index < stop else self.picture(index)

        return Clip(self.length, make, self.fps)

    def _index(self, at_s: float) -> int:
        return self.length if math.isinf(at_s) else round(at_s * self.fps)


def as_picture(image: npt.NDArray[Any]) -> BGRImage:
    return image.astype(np.uint8, copy=False)


def noisy(std: float) -> Edit:
    """Gaussian sensor noise, each picture its own (OpenCV's generator, seeded per picture
    so that a clip's noise does not depend on what was played before)."""
    seeds = itertools.count(1)

    def edit(picture: BGRImage) -> BGRImage:
        cv2.setRNGSeed(next(seeds))
        noise = np.empty(picture.shape, np.int16)
        cv2.randn(noise, np.zeros(3), np.full(3, std))
        return as_picture(cv2.add(picture, noise, dtype=cv2.CV_8U))

    return edit


def darkened(gain: float, noise_std: float) -> Edit:
    """The light turned down to `gain` of itself, with sensor noise."""
    add_noise = noisy(noise_std)
    return lambda picture: add_noise(as_picture(cv2.convertScaleAbs(picture, alpha=gain)))


def saturated(picture: BGRImage) -> BGRImage:
    """Over-exposed: gain x3 and +100, most of the picture clips at white."""
    return as_picture(cv2.convertScaleAbs(picture, alpha=3.0, beta=100.0))


def covered(share: float, level: int) -> Edit:
    """The left `share` of the view covered by a flat patch of grey `level` (a hand, a bag,
    tape), with a little sensor noise over all of it."""
    add_noise = noisy(2.0)

    def edit(picture: BGRImage) -> BGRImage:
        out = picture.copy()
        out[:, : round(picture.shape[1] * share)] = level
        return add_noise(out)

    return edit


def sprayed(share: float, sigma: float) -> Edit:
    """The left `share` of the view smeared (paint sprayed on the lens): a Gaussian blur of
    `sigma` pixels, made at a quarter of the size to be quick."""

    def edit(picture: BGRImage) -> BGRImage:
        height, width = picture.shape[:2]
        small = cv2.resize(picture, (width // 4, height // 4), interpolation=cv2.INTER_AREA)
        smeared = cv2.resize(cv2.GaussianBlur(small, (0, 0), sigma / 4), (width, height))
        out = picture.copy()
        edge = round(width * share)
        out[:, :edge] = smeared[:, :edge]
        return out

    return edit


def blurred(sigma: float) -> Edit:
    """Out of focus: a Gaussian blur of `sigma` pixels."""
    return lambda picture: as_picture(cv2.GaussianBlur(picture, (0, 0), sigma))


def viewed(x: float, y: float = 0.0) -> Edit:
    """What a camera pointed elsewhere sees: the window of three quarters of the picture's
    size whose top-left corner is at (`x`, `y`) (fractions of the width and height), scaled
    to full size."""

    def edit(picture: BGRImage) -> BGRImage:
        height, width = picture.shape[:2]
        left, top = round(x * width), round(y * height)
        window = picture[top : top + height * 3 // 4, left : left + width * 3 // 4]
        return as_picture(cv2.resize(window, (width, height), interpolation=cv2.INTER_LINEAR))

    return edit


def shaken(max_px: int) -> Edit:
    """A shaking mount: each picture moved by up to `max_px` pixels each way."""
    rng = np.random.default_rng(1)

    def edit(picture: BGRImage) -> BGRImage:
        dx, dy = rng.integers(-max_px, max_px + 1, size=2)
        move = np.array([[1.0, 0.0, float(dx)], [0.0, 1.0, float(dy)]])
        size = (picture.shape[1], picture.shape[0])
        return as_picture(cv2.warpAffine(picture, move, size, borderMode=cv2.BORDER_REPLICATE))

    return edit


def pasted(source: BGRImage, box: tuple[float, float, float, float]) -> Edit:
    """The part `box` of `source` (left, top, right, bottom, as fractions of the width and
    height) pasted into every picture: a person from one picture standing still in all of
    them, or a place emptied with a picture in which nobody is there."""
    height, width = source.shape[:2]
    rows = slice(round(box[1] * height), round(box[3] * height))
    columns = slice(round(box[0] * width), round(box[2] * width))
    patch = source[rows, columns].copy()

    def edit(picture: BGRImage) -> BGRImage:
        out = picture.copy()
        out[rows, columns] = patch
        return out

    return edit
