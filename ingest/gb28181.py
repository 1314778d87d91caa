"""A GB/T 28181 channel's live video, received by the worker that holds the camera's lease.

The worker cannot speak SIP to the device itself (the device knows one signalling service), so
it asks a `MediaBroker` for the channel with an offer (where to send the video and how); the
signalling service INVITEs the device with it and the broker hands back the device's answer.
The worker then receives the RTP itself, so frames never leave it, and releases the session
(the service says BYE) when it stops or the stream stalls.

A channel's camera URL is `gb28181://DEVICE-ID/CHANNEL-ID`; its `transport` says how the video
comes: `udp`, `tcp` (TCP passive: the worker listens and the device connects, the common
default) or `tcp-active` (the worker connects to the device)."""

from __future__ import annotations

import random
import re
import socket
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from typing import Literal, Protocol

from ingest.rtp import RtpPsInput, TcpPackets, UdpPackets, accept_from

MediaTransport = Literal["UDP", "TCP-passive", "TCP-active"]
TRANSPORTS: dict[str, MediaTransport] = {"udp": "UDP", "tcp": "TCP-passive",
                                         "tcp-active": "TCP-active"}  # fmt: skip
CHANNEL_URL = re.compile(r"^gb28181://(\d{20})/(\d{20})/?$", re.IGNORECASE)
ANSWER_POLL_S = 0.1
UDP_BUFFER_BYTES = 4 * 1024 * 1024  # a keyframe burst of a 4K camera fits


def channel_of_url(url: str) -> tuple[str, str]:
    """(device ID, channel ID) of a channel's camera URL; ValueError if it is not one.

    Example:
        >>> channel_of_url("gb28181://34020000001180000001/34020000001320000001")
        ('34020000001180000001', '34020000001320000001')
    """
    found = CHANNEL_URL.match(url)
    if found is None:
        raise ValueError(
            "a GB/T 28181 camera URL is gb28181://DEVICE-ID/CHANNEL-ID (20 digits each)"
        )
    return found.group(1), found.group(2)


@dataclass(frozen=True, slots=True)
class MediaOffer:
    """What the worker offers a device: send channel `channel_id`'s video to `host`:`port`
    over `transport` (TCP-active: the worker will connect; `port` is then unused)."""

    device_id: str
    channel_id: str
    host: str
    port: int
    transport: MediaTransport


@dataclass(frozen=True, slots=True)
class MediaAnswer:
    """What the device answered: its video comes from `hosts` (its SDP's address and the
    address it registered from), on `port` (TCP-active: where to connect), with `ssrc`."""

    hosts: tuple[str, ...]
    port: int
    ssrc: int | None


class MediaRefusedError(Exception):
    """The device, or the signalling service, would not start the stream; says why."""


class MediaBroker(Protocol):
    """Negotiates a channel's media with its device on the worker's behalf."""

    def request(self, camera_id: str, offer: MediaOffer) -> None:
        """Ask for the stream (replacing any earlier session of the camera)."""
        ...

    def answer(self, camera_id: str) -> MediaAnswer | None:
        """The device's answer; None while it is awaited; MediaRefusedError if it will not come."""
        ...

    def release(self, camera_id: str) -> None:
        """The worker no longer receives: end the session with the device."""
        ...


@dataclass(frozen=True, slots=True)
class MediaSettings:
    """Where this worker receives GB/T 28181 video: the address devices send to, and the
    ports it may bind (None: any free one)."""

    address: str
    ports: tuple[int, int] | None


def bind(kind: int, ports: tuple[int, int] | None) -> socket.socket:
    """A socket of `kind` bound on all interfaces, on a free port of `ports` (tried from a
    random one, so workers of one node rarely race for the same) or any free port."""
    candidates = [0]
    if ports is not None:
        low, high = ports
        start = random.randint(low, high)
        candidates = [*range(start, high + 1), *range(low, start)]
    for port in candidates:
        sock = socket.socket(socket.AF_INET, kind)
        try:
            sock.bind(("0.0.0.0", port))
            return sock
        except OSError:
            sock.close()
    raise OSError(f"no free port from {ports[0]} to {ports[1]}" if ports else "no free port")


def await_answer(
    broker: MediaBroker, camera_id: str, timeout_s: float, stop: threading.Event
) -> MediaAnswer:
    deadline = time.monotonic() + timeout_s
    while not stop.is_set() and time.monotonic() < deadline:
        answer = broker.answer(camera_id)
        if answer is not None:
            return answer
        stop.wait(ANSWER_POLL_S)
    raise MediaRefusedError(f"the device did not answer within {timeout_s:g} s")


@contextmanager
def receive_channel(
    camera_id: str,
    url: str,
    transport: str,
    broker: MediaBroker,
    settings: MediaSettings,
    timeouts: tuple[float, float],
    stop: threading.Event,
) -> Iterator[RtpPsInput]:
    """The PS stream of a channel, from the INVITE to the BYE: ask the broker, wait for the
    answer (`timeouts[0]`), receive; `read` ends after `timeouts[1]` without a packet."""
    device_id, channel_id = channel_of_url(url)
    kind = TRANSPORTS[transport]
    open_s, read_s = timeouts
    with ExitStack() as resources:
        sock: socket.socket | None = None
        if kind == "UDP":
            sock = resources.enter_context(bind(socket.SOCK_DGRAM, settings.ports))
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, UDP_BUFFER_BYTES)
        elif kind == "TCP-passive":
            sock = resources.enter_context(bind(socket.SOCK_STREAM, settings.ports))
            sock.listen(1)
        port = sock.getsockname()[1] if sock is not None else 9  # RFC 4145: 9 when active
        broker.request(camera_id, MediaOffer(device_id, channel_id, settings.address, port, kind))
        resources.callback(broker.release, camera_id)
        answer = await_answer(broker, camera_id, open_s, stop)
        refused: Counter[str] = Counter()  # connections from elsewhere (TCP passive)
        if kind == "UDP":
            assert sock is not None
            source: UdpPackets | TcpPackets = UdpPackets(sock)
        elif kind == "TCP-passive":
            assert sock is not None
            connection = accept_from(sock, answer.hosts, open_s, refused)
            if connection is None:
                raise MediaRefusedError(f"the device did not connect within {open_s:g} s")
            source = TcpPackets(connection)
        else:
            try:
                connection = socket.create_connection((answer.hosts[0], answer.port), open_s)
            except OSError as exc:
                raise MediaRefusedError(
                    f"the device's media port refused the connection: {exc.strerror}"
                ) from None
            source = TcpPackets(connection)
        stream = RtpPsInput(source, answer.hosts, answer.ssrc, read_s)
        stream.counts.update(refused)
        resources.callback(stream.close)
        yield stream
