"""RTSP camera simulator: serves MP4 files (H.264 or H.265) as endless live RTSP streams.

Each ``--mount`` file is read once into memory as a list of coded access units and then
replayed in real time, looping forever, as a live camera would: the stream never ends, and
all clients of one mount share the same live stream. Built on GStreamer's RTSP server via
PyGObject, so run it with the system interpreter (Debian packages
``gir1.2-gst-rtsp-server-1.0 python3-gi gstreamer1.0-plugins-{base,good,bad}``)::

    /usr/bin/python3 scripts/rtsp_server.py --port 8554 \\
        --mount /cam1=videos/a.mp4 [--mount /cam2=videos/b.mp4 ...] \\
        [--host 127.0.0.1] [--user U --password P [--auth basic|digest]]

It prints exactly one line ``READY rtsp://HOST:PORT`` to stdout once it is listening, serves
``rtsp://HOST:PORT/cam1`` etc. (RTP over TCP or UDP; optional basic or digest auth for all
mounts), and exits with code 0 on SIGTERM or SIGINT. Diagnostics go to stderr.

A mount's pipeline starts (at the file's first keyframe) with its first client and stops when
its last client leaves. A client that joins a running mount gets the live stream mid-GOP, so
its decoder waits for the next keyframe: use test files with a short GOP (e.g. ``-g`` of 1 s).
"""

from __future__ import annotations

import argparse
import math
import signal
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtsp", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtsp, GstRtspServer  # noqa: E402

# Codec name (from the demuxed caps) -> (parser element, RTP payloader element).
CODECS: dict[str, tuple[str, str]] = {
    "video/x-h264": ("h264parse", "rtph264pay"),
    "video/x-h265": ("h265parse", "rtph265pay"),
}
LOAD_TIMEOUT_S = 30
# If the feeder falls this far behind (or ahead of) the pipeline clock, it resynchronises
# instead of bursting frames to catch up.
RESYNC_NS = Gst.SECOND
DEFAULT_FPS = 25.0


def log(msg: str) -> None:
    print(f"rtsp_server: {msg}", file=sys.stderr, flush=True)


@dataclass
class Clip:
    """A video file's coded access units in decode order, ready to be replayed."""

    path: str
    media_type: str  # "video/x-h264" or "video/x-h265"
    caps: str  # caps for appsrc (byte-stream, one access unit per buffer)
    frames: list[GLib.Bytes]
    durations: list[int]  # ns from each frame's DTS to the next one's
    pts_offsets: list[int]  # ns from each frame's DTS to its PTS (B-frames)
    fps: float
    keyframes: int

    @property
    def length_ns(self) -> int:
        return sum(self.durations)


def load_clip(path: str) -> Clip:
    """Demux ``path`` and return its video access units (byte-stream, AU-aligned)."""
    pipeline = Gst.Pipeline.new("loader")
    src = Gst.ElementFactory.make("filesrc")
    demux = Gst.ElementFactory.make("qtdemux")
    sink = Gst.ElementFactory.make("appsink")
    if src is None or demux is None or sink is None:
        raise RuntimeError("GStreamer elements filesrc/qtdemux/appsink are missing")
    src.set_property("location", path)
    sink.set_property("sync", False)
    sink.set_property("emit-signals", False)
    for element in (src, demux, sink):
        pipeline.add(element)
    src.link(demux)
    found: dict[str, str] = {}

    def on_pad_added(_demux: Gst.Element, pad: Gst.Pad) -> None:
        caps = pad.get_current_caps() or pad.query_caps(None)
        name = caps.get_structure(0).get_name() if caps and caps.get_size() else ""
        if "media_type" in found or name not in CODECS:
            return
        parse = Gst.ElementFactory.make(CODECS[name][0])
        capsfilter = Gst.ElementFactory.make("capsfilter")
        if parse is None or capsfilter is None:
            return
        found["media_type"] = name
        parse.set_property("config-interval", -1)  # parameter sets before every keyframe
        capsfilter.set_property(
            "caps", Gst.Caps.from_string(f"{name},stream-format=byte-stream,alignment=au")
        )
        pipeline.add(parse)
        pipeline.add(capsfilter)
        parse.link(capsfilter)
        capsfilter.link(sink)
        parse.sync_state_with_parent()
        capsfilter.sync_state_with_parent()
        pad.link(parse.get_static_pad("sink"))

    demux.connect("pad-added", on_pad_added)
    demux.connect("no-more-pads", lambda _demux: found.setdefault("no_more_pads", ""))
    bus = pipeline.get_bus()
    pipeline.set_state(Gst.State.PLAYING)
    frames: list[GLib.Bytes] = []
    stamps: list[tuple[int, int, int]] = []  # (dts, pts, duration), CLOCK_TIME_NONE = -1
    is_key: list[bool] = []
    caps: Gst.Caps | None = None
    deadline = GLib.get_monotonic_time() + LOAD_TIMEOUT_S * 1_000_000
    try:
        while True:
            msg = bus.pop_filtered(Gst.MessageType.ERROR)
            if msg is not None:
                err, dbg = msg.parse_error()
                raise RuntimeError(f"cannot read {path}: {err.message} ({dbg})")
            sample = sink.emit("try-pull-sample", 100 * Gst.MSECOND)
            if sample is None:
                if sink.get_property("eos"):
                    break
                if "no_more_pads" in found and "media_type" not in found:
                    raise RuntimeError(f"no H.264/H.265 video track in {path}")
                if GLib.get_monotonic_time() > deadline:
                    raise RuntimeError(f"timed out reading {path}")
                continue
            deadline = GLib.get_monotonic_time() + LOAD_TIMEOUT_S * 1_000_000
            caps = sample.get_caps()
            buf = sample.get_buffer()
            ok, info = buf.map(Gst.MapFlags.READ)
            if not ok:
                raise RuntimeError(f"cannot map a buffer of {path}")
            try:
                frames.append(GLib.Bytes.new(bytes(info.data)))
            finally:
                buf.unmap(info)
            stamps.append((_valid(buf.dts), _valid(buf.pts), _valid(buf.duration)))
            is_key.append(not buf.has_flags(Gst.BufferFlags.DELTA_UNIT))
    finally:
        pipeline.set_state(Gst.State.NULL)
    if caps is None or "media_type" not in found or True not in is_key:
        raise RuntimeError(f"no decodable H.264/H.265 video in {path}")
    # The loop must start (and so wrap around to) a keyframe for decoders to stay valid.
    first = is_key.index(True)
    frames, stamps, is_key = frames[first:], stamps[first:], is_key[first:]

    structure = caps.get_structure(0)
    ok, num, den = structure.get_fraction("framerate")
    fps = num / den if ok and num > 0 and den > 0 else 0.0
    durations, pts_offsets = _frame_timing(stamps, fps)
    if fps <= 0:
        fps = len(durations) * Gst.SECOND / max(1, sum(durations))
    return Clip(
        path=path,
        media_type=found["media_type"],
        caps=caps.to_string(),
        frames=frames,
        durations=durations,
        pts_offsets=pts_offsets,
        fps=fps,
        keyframes=sum(is_key),
    )


def _valid(value: int) -> int:
    return -1 if value == Gst.CLOCK_TIME_NONE else value


def _frame_timing(stamps: list[tuple[int, int, int]], fps: float) -> tuple[list[int], list[int]]:
    """Per-frame durations (DTS to next DTS) and PTS-DTS offsets, with sane fallbacks."""
    n = len(stamps)
    nominal = int(Gst.SECOND / fps) if fps > 0 else 0
    dts = [s[0] if s[0] >= 0 else s[1] for s in stamps]
    durations: list[int] = []
    for i in range(n):
        d = -1
        if i + 1 < n and dts[i] >= 0 and dts[i + 1] > dts[i]:
            d = dts[i + 1] - dts[i]
        elif stamps[i][2] > 0:
            d = stamps[i][2]
        durations.append(d)
    known = [d for d in durations if d > 0]
    fallback = nominal or (int(sum(known) / len(known)) if known else int(Gst.SECOND / DEFAULT_FPS))
    durations = [d if d > 0 else fallback for d in durations]
    if nominal:
        # Constant frame rate: pace exactly, ignoring timestamp rounding from the container.
        durations = [nominal if abs(d - nominal) < nominal // 4 else d for d in durations]
    offsets = [
        max(0, s[1] - d) if s[1] >= 0 and d >= 0 else 0 for s, d in zip(stamps, dts, strict=True)
    ]
    return durations, offsets


class Feeder:
    """Pushes a clip's access units into one media's appsrc in real time, looping forever."""

    def __init__(self, clip: Clip, appsrc: Gst.Element, mount: str) -> None:
        self.clip = clip
        self.appsrc = appsrc
        self.mount = mount
        self.index = 0
        self.next_dts: int | None = None  # running time of the next frame's DTS
        self.pushed = 0
        self.lock = threading.Lock()
        self.source_id: int | None = None
        self.stopped = False

    def start(self) -> None:
        with self.lock:
            self._arm(1)

    def stop(self) -> None:
        with self.lock:
            self.stopped = True
            if self.source_id is not None:
                GLib.source_remove(self.source_id)
                self.source_id = None
        log(f"{self.mount}: media stopped after {self.pushed} frames")

    def _arm(self, delay_ms: int) -> None:
        if not self.stopped:
            self.source_id = GLib.timeout_add(delay_ms, self._tick, priority=GLib.PRIORITY_HIGH)

    def _tick(self) -> bool:
        with self.lock:
            self.source_id = None
            if self.stopped:
                return False
            delay_ms = self._feed()
            self._arm(delay_ms)
        return False  # a new one-shot timeout was armed for the next frame

    def _feed(self) -> int:
        """Push every frame that is due; return milliseconds until the next one."""
        _, state, _ = self.appsrc.get_state(0)
        clock = self.appsrc.get_clock()
        if state != Gst.State.PLAYING or clock is None:
            return 10
        now = int(clock.get_time() - self.appsrc.get_base_time())
        if self.next_dts is None or abs(now - self.next_dts) > RESYNC_NS:
            self.next_dts = now
        while self.next_dts <= now + Gst.MSECOND:
            i = self.index
            buf = Gst.Buffer.new_wrapped_bytes(self.clip.frames[i])
            buf.dts = self.next_dts
            buf.pts = self.next_dts + self.clip.pts_offsets[i]
            buf.duration = self.clip.durations[i]
            ret = self.appsrc.emit("push-buffer", buf)
            if ret not in (Gst.FlowReturn.OK, Gst.FlowReturn.FLUSHING):
                log(f"{self.mount}: push-buffer returned {ret.value_nick}")
            self.pushed += 1
            self.next_dts += self.clip.durations[i]
            self.index = (i + 1) % len(self.clip.frames)
        return max(1, math.ceil((self.next_dts - now) / 1_000_000))


class LoopingCameraFactory(GstRtspServer.RTSPMediaFactory):  # type: ignore[misc]
    """Shared media factory whose pipeline is fed by a :class:`Feeder`."""

    def __init__(self, clip: Clip, mount: str) -> None:
        super().__init__()
        self.clip = clip
        self.mount = mount
        parse, pay = CODECS[clip.media_type]
        self.set_launch(
            "( appsrc name=src is-live=true format=time do-timestamp=false "
            f"! {parse} config-interval=-1 ! {pay} name=pay0 pt=96 config-interval=1 )"
        )
        self.set_shared(True)
        self.set_protocols(GstRtsp.RTSPLowerTrans.TCP | GstRtsp.RTSPLowerTrans.UDP)
        self.connect("media-configure", self._on_media_configure)

    def _on_media_configure(
        self, _factory: GstRtspServer.RTSPMediaFactory, media: GstRtspServer.RTSPMedia
    ) -> None:
        bin_ = media.get_element()
        appsrc = bin_.get_by_name("src")
        appsrc.set_property("caps", Gst.Caps.from_string(self.clip.caps))
        feeder = Feeder(self.clip, appsrc, self.mount)
        media.connect("unprepared", lambda _media: feeder.stop())
        log(f"{self.mount}: new media, starting live feed")
        feeder.start()


def parse_mount(value: str) -> tuple[str, str]:
    mount, sep, path = value.partition("=")
    if not sep or not mount.startswith("/") or len(mount) < 2 or not path:
        raise argparse.ArgumentTypeError(f"expected /NAME=FILE, got {value!r}")
    return mount, path


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True, help="RTSP port to listen on")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default %(default)s)")
    parser.add_argument(
        "--mount",
        type=parse_mount,
        action="append",
        required=True,
        metavar="/NAME=FILE",
        help="serve FILE (H.264/H.265 MP4) at rtsp://HOST:PORT/NAME; repeatable",
    )
    parser.add_argument("--user", help="require RTSP basic auth with this user name")
    parser.add_argument("--password", help="password for --user")
    parser.add_argument(
        "--auth", choices=("basic", "digest"), default="basic", help="auth scheme for --user"
    )
    return parser


def make_auth(
    user: str, password: str, scheme: str = "basic"
) -> tuple[GstRtspServer.RTSPAuth, GstRtspServer.RTSPPermissions]:
    auth = GstRtspServer.RTSPAuth()
    token = GstRtspServer.RTSPToken()
    token.set_string("media.factory.role", "camera-user")
    if scheme == "digest":
        auth.set_supported_methods(GstRtsp.RTSPAuthMethod.DIGEST)
        auth.add_digest(user, password, token)
    else:
        auth.add_basic(GstRtspServer.RTSPAuth.make_basic(user, password), token)
    permissions = GstRtspServer.RTSPPermissions()
    permissions.add_permission_for_role("camera-user", "media.factory.access", True)
    permissions.add_permission_for_role("camera-user", "media.factory.construct", True)
    return auth, permissions


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if (args.user is None) != (args.password is None):
        parser.error("--user and --password go together")
    mounts: list[tuple[str, str]] = args.mount
    if len({m for m, _ in mounts}) != len(mounts):
        parser.error("duplicate mount name")
    for _, path in mounts:
        if not Path(path).is_file():
            parser.error(f"no such file: {path}")

    Gst.init(None)
    clips: dict[str, Clip] = {}
    server = GstRtspServer.RTSPServer()
    server.set_address(args.host)
    server.set_service(str(args.port))
    auth_perms = make_auth(args.user, args.password, args.auth) if args.user is not None else None
    if auth_perms is not None:
        server.set_auth(auth_perms[0])
    mount_points = server.get_mount_points()
    for mount, path in mounts:
        try:
            clip = clips.get(path) or load_clip(path)
        except RuntimeError as exc:
            log(str(exc))
            return 1
        clips[path] = clip
        log(
            f"{mount}: {path} {clip.media_type} {len(clip.frames)} frames, {clip.fps:.3f} fps, "
            f"{clip.length_ns / Gst.SECOND:.2f} s loop, {clip.keyframes} keyframes"
        )
        factory = LoopingCameraFactory(clip, mount)
        if auth_perms is not None:
            factory.set_permissions(auth_perms[1])
        mount_points.add_factory(mount, factory)

    if server.attach(None) == 0:
        log(f"cannot listen on {args.host}:{args.port}")
        return 1
    # Expire sessions of clients that vanished without TEARDOWN (e.g. UDP clients).
    pool = server.get_session_pool()
    GLib.timeout_add_seconds(2, lambda: pool.cleanup() >= 0)

    loop = GLib.MainLoop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        GLib.unix_signal_add(GLib.PRIORITY_HIGH, signum, _quit, loop)
    host = f"[{args.host}]" if ":" in args.host else args.host
    print(f"READY rtsp://{host}:{server.get_bound_port()}", flush=True)
    loop.run()
    log("stopping")
    return 0


def _quit(loop: GLib.MainLoop) -> bool:
    loop.quit()
    return False  # GLib.SOURCE_REMOVE


if __name__ == "__main__":
    sys.exit(main())
