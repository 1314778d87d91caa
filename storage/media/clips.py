"""Clips are cut from the packet ring and remuxed to MP4: a stream copy, never a re-encode,
except for cameras whose privacy masking is on: their faces are blurred in every frame, so
their clips are decoded, masked and encoded again (`mask_to_mp4`)."""

from __future__ import annotations

import collections
import itertools
from collections.abc import Iterator, Sequence
from pathlib import Path

import av
import av.stream
import av.video.stream
import numpy as np
from av.video.frame import PictureType

from common.types import BGRImage, ClipMask, Mask
from ingest.picture import frame_jpeg
from ingest.ring import EncodedPacket, StreamInfo

# Masked clips: x264's veryfast preset on one thread encodes 640x480 at ~5 ms a frame, a
# tenth of what face detection costs; CRF 20, a little better than x264's default 23,
# because the clip is evidence that the camera has already compressed once.
MASK_ENCODER = "libx264"
MASK_ENCODER_OPTIONS = {"preset": "veryfast", "crf": "20", "threads": "1"}


class ClipError(ValueError):
    """The packets cannot make a clip (none, or not starting at a keyframe)."""


def _checked(packets: Sequence[EncodedPacket]) -> StreamInfo:
    if not packets:
        raise ClipError("no packets in the requested window")
    if not packets[0].is_keyframe:
        raise ClipError("clip does not start at a keyframe")
    if packets[0].stream.template is None:
        raise ClipError("the stream's codec parameters are unknown")
    return packets[0].stream


def _rebased(packets: Sequence[EncodedPacket]) -> Iterator[av.Packet[av.stream.Stream]]:
    """`packets` as PyAV packets whose timestamps start at zero.

    Packets without a PTS get one from their arrival time, so a camera with a broken clock
    still gives a playable clip; DTS are made strictly increasing, as the muxer needs.
    """
    first, time_base = packets[0], packets[0].stream.time_base
    origin_pts = first.pts if first.pts is not None else 0
    last_dts: int | None = None
    for item in packets:
        if item.pts is None:
            pts = origin_pts + round((item.wall_time - first.wall_time) / time_base)
        else:
            pts = item.pts
        dts = item.dts if item.dts is not None else pts
        pts, dts = pts - origin_pts, dts - origin_pts
        if last_dts is not None and dts <= last_dts:
            dts = last_dts + 1
            pts = max(pts, dts)
        last_dts = dts
        packet = av.Packet(item.data)
        packet.pts = pts
        packet.dts = dts
        packet.time_base = time_base
        packet.is_keyframe = item.is_keyframe
        yield packet


def remux_to_mp4(packets: Sequence[EncodedPacket], target: Path) -> None:
    """Write `packets` as they are into the MP4 file `target` (index up front: faststart),
    timestamps rebased so the clip starts at zero."""
    info = _checked(packets)
    assert info.template is not None
    with av.open(str(target), "w", format="mp4", options={"movflags": "+faststart"}) as output:
        stream = output.add_stream_from_template(info.template.stream)
        for packet in _rebased(packets):
            packet.stream = stream
            output.mux(packet)


def _decoded(packets: Sequence[EncodedPacket]) -> Iterator[av.VideoFrame]:
    """The frames of `packets` in presentation order; packets the decoder rejects (a corrupt
    stream) are skipped, as a player would, rather than losing the whole clip."""
    info = packets[0].stream
    decoder = av.CodecContext.create(info.codec, "r")
    assert isinstance(decoder, av.VideoCodecContext) and info.template is not None
    decoder.extradata = info.template.stream.codec_context.extradata
    decoder.thread_count = 1  # the recorder shares the worker's cores with live analytics
    for packet in [*_rebased(packets), None]:
        try:
            yield from decoder.decode(packet)
        except av.error.InvalidDataError:
            continue


def _masked(
    frames: Iterator[av.VideoFrame], mask: ClipMask, size: tuple[int, int]
) -> Iterator[tuple[av.VideoFrame, BGRImage]]:
    """Each frame with its picture (BGR, `size`) masked, in order."""
    pending: collections.deque[av.VideoFrame] = collections.deque()  # given to `mask`, not back

    def pictures() -> Iterator[BGRImage]:
        for frame in frames:
            pending.append(frame)
            picture = frame.to_ndarray(format="bgr24", width=size[0], height=size[1], threads=1)
            yield picture.astype(np.uint8, copy=False)

    for masked in mask(pictures()):
        yield pending.popleft(), masked


def mask_to_mp4(packets: Sequence[EncodedPacket], target: Path, mask: ClipMask) -> None:
    """Decode `packets` (any codec PyAV decodes), hide what `mask` hides (faces), and encode
    the frames to H.264 in the MP4 file `target` (faststart).

    The clip keeps the source's size, frame count and timestamps (rebased to zero, as in
    `remux_to_mp4`), and has a keyframe wherever the source had one.

    Example:
        >>> mask_to_mp4(ring.window(start, end), Path("clip.mp4"), mask)  # doctest: +SKIP
    """
    info = _checked(packets)
    frames = _decoded(packets)
    first = next(frames, None)
    if first is None:
        raise ClipError("no frame of the clip could be decoded")
    size = first.width, first.height  # a stream's size changes only on a new connection
    with av.open(str(target), "w", format="mp4", options={"movflags": "+faststart"}) as output:
        stream = output.add_stream(MASK_ENCODER, options=MASK_ENCODER_OPTIONS)
        assert isinstance(stream, av.video.stream.VideoStream)
        stream.width, stream.height = size
        stream.pix_fmt = "yuv420p"
        stream.time_base = stream.codec_context.time_base = info.time_base
        last_pts = -1
        for source, picture in _masked(itertools.chain([first], frames), mask, size):
            frame = av.VideoFrame.from_ndarray(picture, format="bgr24").reformat(format="yuv420p")
            # The source's PTS, unless broken: the encoder needs them strictly increasing.
            pts = source.pts if source.pts is not None and source.pts > last_pts else last_pts + 1
            frame.pts, frame.time_base, last_pts = pts, info.time_base, pts
            if source.key_frame:
                frame.pict_type = PictureType.I  # x264 makes it an IDR frame: seekable there
            for packet in stream.encode(frame):
                output.mux(packet)
        for packet in stream.encode(None):
            output.mux(packet)


def picture_jpeg(gop: Sequence[EncodedPacket], width: int, mask: Mask | None) -> bytes:
    """The first picture of a GOP (its keyframe, decoded alone), `width` pixels wide at most,
    `mask`ed (faces blurred) where given, as a JPEG.

    Example:
        >>> picture_jpeg(ring.gops_after(0.0, include_open=True)[-1], 480, None)  # doctest: +SKIP
        b'\\xff\\xd8...'
    """
    _checked(gop)
    frame = next(_decoded(gop[:1]), None)
    if frame is None:
        raise ClipError("the keyframe does not decode")
    return frame_jpeg(frame, width, mask)
