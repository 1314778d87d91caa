"""Open a camera's stream only where the egress policy lets this key reach (common/egress.py).

FFmpeg resolves names and follows redirects by itself, out of our sight. So for a probe made on
a key's behalf, FFmpeg never connects anywhere on its own:
- RTSP and RTMP go through a relay on loopback that connects to the one checked address, and
  cuts an RTSP connection that answers with a redirect (FFmpeg would follow it elsewhere);
- HTTP sources (HLS, HTTP-FLV, MJPEG) are fetched by httpx, each URL (playlists, segments,
  redirects) checked and pinned, and handed to FFmpeg as file objects.
"""

from __future__ import annotations

import contextlib
import io
import re
import socket
import threading
from collections.abc import Iterator
from urllib.parse import SplitResult, unquote, urljoin, urlsplit, urlunsplit

import av
import httpx

from common.egress import Destination, send_checked
from common.urls import host_and_port
from ingest.config import CameraConfig

RELAYED = ("rtsp", "rtsps", "rtmp")
RTSP_REDIRECT = re.compile(rb"RTSP/1\.\d 3\d\d ")
CHUNK = 64 * 1024


class TcpRelay:
    """A loopback port whose connections reach only `address`:`port`.

    Example:
        >>> with TcpRelay("10.0.0.9", 554, refuse_rtsp_redirects=True) as relay:  # doctest: +SKIP
        ...     av.open(f"rtsp://127.0.0.1:{relay.port}/live")
    """

    def __init__(self, address: str, port: int, refuse_rtsp_redirects: bool, timeout_s: float):
        self.address, self.target_port = address, port
        self.refuse_rtsp_redirects = refuse_rtsp_redirects
        self.timeout_s = timeout_s
        self._server = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._server.getsockname()[1]
        self._sockets: list[socket.socket] = [self._server]
        self._lock = threading.Lock()

    def __enter__(self) -> TcpRelay:
        threading.Thread(target=self._accept, name="probe-relay", daemon=True).start()
        return self

    def __exit__(self, *_: object) -> None:
        with self._lock:
            sockets, self._sockets = self._sockets, []
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def _keep(self, sock: socket.socket) -> bool:
        with self._lock:
            if not self._sockets:  # closed meanwhile
                sock.close()
                return False
            self._sockets.append(sock)
            return True

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._server.accept()
            except OSError:
                return  # closed
            if not self._keep(client):
                return
            try:
                target = (self.address, self.target_port)
                upstream = socket.create_connection(target, self.timeout_s)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            if not self._keep(upstream):
                return
            for source, sink, inspect in ((client, upstream, False), (upstream, client, True)):
                threading.Thread(
                    target=self._pump,
                    args=(source, sink, inspect and self.refuse_rtsp_redirects),
                    name="probe-relay",
                    daemon=True,
                ).start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket, refuse_redirects: bool) -> None:
        tail = b""  # the end of the last chunk: a status line may be split across two
        try:
            while data := source.recv(CHUNK):
                if refuse_redirects and RTSP_REDIRECT.search(tail + data):
                    break
                tail = data[-16:]
                sink.sendall(data)
        except OSError:
            pass
        for sock in (source, sink):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


class HttpBody(io.RawIOBase):
    """The body of a GET of `url`, fetched where `destination` allows, as a file for FFmpeg."""

    def __init__(self, client: httpx.Client, url: str, destination: Destination) -> None:
        super().__init__()
        self.response = send_checked(client, "GET", url, destination, stream=True)
        if not self.response.is_success:
            self.response.close()
            raise httpx.HTTPStatusError(
                f"HTTP {self.response.status_code}",
                request=self.response.request,
                response=self.response,
            )
        self._chunks: Iterator[bytes] = self.response.iter_raw(CHUNK)
        self._buffer = b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        while not self._buffer:
            try:
                self._buffer = next(self._chunks)
            except StopIteration:
                return 0
        size = min(len(buffer), len(self._buffer))
        buffer[:size] = self._buffer[:size]
        self._buffer = self._buffer[size:]
        return size

    def close(self) -> None:
        self.response.close()
        super().close()

    def is_playlist(self) -> bool:
        kind = self.response.headers.get("content-type", "").lower()
        path = urlsplit(str(self.response.url)).path.lower()
        return "mpegurl" in kind or path.endswith(".m3u8")


@contextlib.contextmanager
def open_checked(
    camera: CameraConfig, url: str, destination: Destination, timeout_s: float, probe_s: float
) -> Iterator[av.container.InputContainer]:
    """`url` (one of `camera`'s) opened by FFmpeg, every connection where `destination`
    allows: EgressRefusedError if one is not; av.error.FFmpegError, httpx.HTTPError or OSError if
    the camera cannot be read."""
    parts = urlsplit(camera.open_url(url))
    scheme = parts.scheme.lower()
    options = camera.demux_options(url, probe_s)
    if scheme == "file":  # no connection: whether a key may read files is the caller's call
        with av.open(camera.open_url(url), options=options) as container:
            yield container
        return
    if scheme in RELAYED:
        host, port = host_and_port(url)
        address = destination(host, port)
        redirects = scheme == "rtsp"  # inside TLS (rtsps) a redirect cannot be seen
        with TcpRelay(address, port, redirects, timeout_s) as relay:
            userinfo = parts.netloc.rpartition("@")[0]
            netloc = f"{userinfo}@127.0.0.1:{relay.port}" if userinfo else f"127.0.0.1:{relay.port}"
            local = urlunsplit(SplitResult(scheme, netloc, parts.path, parts.query, ""))
            with av.open(local, options=options, timeout=(timeout_s, timeout_s)) as container:
                yield container
        return
    # Credentials as FFmpeg would send them (basic); TLS unverified as FFmpeg's default.
    auth = None
    if parts.username is not None:
        auth = httpx.BasicAuth(unquote(parts.username), unquote(parts.password or ""))
    with httpx.Client(timeout=timeout_s, follow_redirects=False, verify=False, auth=auth) as client:

        def open_nested(nested: str, flags: int, _options: dict[str, str]) -> HttpBody:
            # Segments and reloads of the playlist, named relative to it ("" is the playlist).
            return HttpBody(client, urljoin(url, nested), destination)

        with HttpBody(client, url, destination) as body:
            hls = body.is_playlist()
            opened = av.open(
                body,
                format="hls" if hls else None,
                options=options,
                timeout=(timeout_s, timeout_s),
                io_open=open_nested if hls else None,
            )
            assert isinstance(opened, av.container.InputContainer)  # opened for reading
            with opened:
                yield opened
