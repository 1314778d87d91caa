"""Clips are cut from the packet ring and remuxed to MP4: stream copy, never a re-encode."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import av

from ingest.ring import EncodedPacket


class ClipError(ValueError):
    """The packets cannot make a clip (none, or not starting at a keyframe)."""


def remux_to_mp4(packets: Sequence[EncodedPacket], target: Path) -> None:
    """Write `packets` as they are into the MP4 file `target` (index up front: faststart).

    Timestamps are rebased so the clip starts at zero. Packets without a PTS get one from
    their arrival time, so a camera with a broken clock still gives a playable clip.
    """
    if not packets:
        raise ClipError("no packets in the requested window")
    first = packets[0]
    if not first.is_keyframe:
        raise ClipError("clip does not start at a keyframe")
    info = first.stream
    if info.template is None:
        raise ClipError("the stream's codec parameters are unknown")
    with av.open(str(target), "w", format="mp4", options={"movflags": "+faststart"}) as output:
        stream = output.add_stream_from_template(info.template.stream)
        origin_pts = first.pts if first.pts is not None else 0
        last_dts: int | None = None
        for item in packets:
            if item.pts is None:
                pts = origin_pts + round((item.wall_time - first.wall_time) / info.time_base)
            else:
                pts = item.pts
            dts = item.dts if item.dts is not None else pts
            pts, dts = pts - origin_pts, dts - origin_pts
            if last_dts is not None and dts <= last_dts:
                dts = last_dts + 1  # the muxer needs strictly increasing DTS
                pts = max(pts, dts)
            last_dts = dts
            packet = av.Packet(item.data)
            packet.pts = pts
            packet.dts = dts
            packet.time_base = info.time_base
            packet.is_keyframe = item.is_keyframe
            packet.stream = stream
            output.mux(packet)
