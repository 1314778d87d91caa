"""The motion detector finds what moved, ignores masked areas, and adapts to the scene."""

from __future__ import annotations

import numpy as np

from analytics.motion import MotionConfig, MotionDetector


def scene(x: int) -> np.ndarray:
    """A grey textured street with a dark 40x80 'person' at column `x`."""
    rng = np.random.default_rng(0)
    image = np.clip(120 + rng.normal(0, 6, (360, 640, 3)), 0, 255).astype(np.uint8)
    image[200:280, x : x + 40] = 30
    return image


def test_only_the_mover_is_a_region() -> None:
    motion = MotionDetector(MotionConfig())
    assert motion.regions(scene(100)) == []  # learns the background
    assert motion.regions(scene(100)) == []  # nothing moved
    (region,) = motion.regions(scene(140))
    assert region.x1 <= 100 / 640 and region.x2 >= 180 / 640
    assert region.y1 <= 200 / 360 and region.y2 >= 280 / 360
    assert region.area < 0.05


def test_masked_motion_is_ignored() -> None:
    mask = [(0.1, 0.5), (0.35, 0.5), (0.35, 0.85), (0.1, 0.85)]
    motion = MotionDetector(MotionConfig(masks=[mask]))
    motion.regions(scene(100))
    assert motion.regions(scene(120)) == []  # inside the mask


def test_sensor_noise_is_not_motion() -> None:
    rng = np.random.default_rng(1)
    motion = MotionDetector(MotionConfig())
    base = scene(100).astype(np.int16)
    for _ in range(10):
        noisy = np.clip(base + rng.normal(0, 4, base.shape), 0, 255).astype(np.uint8)
        assert motion.regions(noisy) == []
