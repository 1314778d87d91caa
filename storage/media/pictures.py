"""Cameras' latest pictures for the console's camera grid: about every 10 s, the newest
keyframe in a camera's packet ring, decoded alone, made small, masked where the camera has
privacy on, as a JPEG in the shared database."""

from __future__ import annotations

import time
from collections.abc import Mapping

from common.types import Mask
from ingest.ring import PacketRing
from storage.database.camera_health import CameraPictureRow, Heartbeats
from storage.database.engine import to_datetime
from storage.media.clips import picture_jpeg

PICTURE_EVERY_S, PICTURE_WIDTH = 10.0, 480


class CameraPictures:
    """Takes each camera's picture when one is due (`take`, called at every heartbeat).

    `rings` and `masks` are by camera and may change under it (the worker's); a camera with
    no mask has privacy off. Raises `ClipError` when the newest keyframe does not decode.
    """

    def __init__(
        self,
        heartbeats: Heartbeats,
        rings: Mapping[str, PacketRing],
        masks: Mapping[str, Mask],
        every_s: float = PICTURE_EVERY_S,
        width: int = PICTURE_WIDTH,
    ) -> None:
        self.heartbeats = heartbeats
        self.rings = rings
        self.masks = masks
        self.every_s = every_s
        self.width = width
        self._taken: dict[str, float] = {}  # camera -> when its picture was last taken

    def take(self, camera_id: str, site: str) -> None:
        now = time.time()
        if now - self._taken.get(camera_id, 0.0) < self.every_s:
            return
        gops = self.rings[camera_id].gops_after(now - self.every_s * 3, include_open=True)
        if not gops:
            return
        self._taken[camera_id] = now
        jpeg = picture_jpeg(gops[-1], self.width, self.masks.get(camera_id))
        taken = to_datetime(gops[-1][0].wall_time)
        row = CameraPictureRow(camera_id=camera_id, site=site, jpeg=jpeg, taken_at=taken)
        self.heartbeats.put_picture(row)
