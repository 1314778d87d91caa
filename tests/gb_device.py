"""A simulated GB/T 28181 device for tests: a SIP user agent over UDP that registers with digest,
keeps alive, answers the platform's queries (its catalog in parts, as NVRs send it) and its
INVITEs: the video is an MPEG program stream muxed by GStreamer's `mpegpsmux` (`mux_ps`, an
independent muxer), cut into RTP packets here and sent over UDP, or over TCP (RFC 4571) as the
offer's `a=setup` says, paced by the stream's own time stamps.

It shares no code with the platform's SIP parser (`gb28181/`): its messages are written and
read with plain string handling here, so that the two do not agree by sharing a mistake. SIPp
covers registration and keepalive independently (tests/sipp/)."""

from __future__ import annotations

import functools
import hashlib
import re
import secrets
import socket
import struct
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from tests.servers import SYSTEM_PYTHON

PLATFORM_ID, DOMAIN = "34020000002000000001", "3402000000"


@dataclass(frozen=True)
class Channel:
    id: str
    name: str
    parent_id: str
    status: str = "ON"


@dataclass
class GbDevice:
    """A device `device_id` with `channels`, speaking to the platform at `platform` (UDP)."""

    device_id: str
    password: str
    platform: tuple[str, int]
    channels: list[Channel]
    per_part: int = 2  # catalog items per MESSAGE
    video: Path | None = None  # a PS file each channel streams when INVITEd (`mux_ps`)
    received: list[str] = field(default_factory=list)  # the platform's requests, as text
    streams: dict[str, Stream] = field(default_factory=dict)  # by Call-ID, while they play
    _sock: socket.socket = field(init=False)
    _cseq: int = 0

    def __post_init__(self) -> None:
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.settimeout(0.2)
        self._stop = threading.Event()
        self._responses: list[str] = []
        self._got = threading.Condition()
        self._sending = threading.Lock()  # one request in flight: a response is its own
        self._thread = threading.Thread(target=self._listen, daemon=True)
        self._thread.start()

    @property
    def port(self) -> int:
        return int(self._sock.getsockname()[1])

    def close(self) -> None:
        """The device stops: signalling and video."""
        self._stop.set()
        for stream in self.streams.values():
            stream.stop()
        self._thread.join(5)
        self._sock.close()

    # -- what the device sends ---------------------------------------------------------------

    def _send(
        self,
        method: str,
        extra: list[str],
        body: str = "",
        to: str | None = None,
        call_id: str | None = None,
    ) -> str:
        self._cseq += 1
        to_user = to or PLATFORM_ID
        lines = [
            f"{method} sip:{PLATFORM_ID}@{DOMAIN} SIP/2.0",
            f"Via: SIP/2.0/UDP 127.0.0.1:{self.port};rport;branch=z9hG4bK{secrets.token_hex(6)}",
            f"From: <sip:{self.device_id}@{DOMAIN}>;tag={secrets.token_hex(4)}",
            f"To: <sip:{to_user}@{DOMAIN}>",
            f"Call-ID: {call_id or secrets.token_hex(8) + '@127.0.0.1'}",
            f"CSeq: {self._cseq} {method}",
            f"Contact: <sip:{self.device_id}@127.0.0.1:{self.port}>",
            "Max-Forwards: 70",
            "User-Agent: Simulated NVR",
            *extra,
            f"Content-Length: {len(body.encode('gb18030'))}",
            "",
            body,
        ]
        with self._got:
            self._responses.clear()
        self._sock.sendto("\r\n".join(lines).encode("gb18030"), self.platform)
        return self._wait_response()

    def _wait_response(self, timeout: float = 5.0) -> str:
        with self._got:
            if not self._got.wait_for(lambda: bool(self._responses), timeout):
                if self._stop.is_set():  # closed meanwhile: whoever asked is gone too
                    return "SIP/2.0 200 OK (closed)"
                raise TimeoutError("the platform did not answer")
            return self._responses.pop(0)

    def register(self, expires: int = 3600) -> int:
        """REGISTER, answering the digest challenge (MD5, qop auth): the final status."""
        challenge = self._send("REGISTER", [f"Expires: {expires}"], to=self.device_id)
        if not challenge.startswith("SIP/2.0 401"):
            return status(challenge)
        header = re.search(r"WWW-Authenticate: Digest (.+)", challenge)
        assert header is not None
        params = dict(re.findall(r'(\w+)="?([^",]+)"?', header.group(1)))
        uri, nc, cnonce = f"sip:{PLATFORM_ID}@{DOMAIN}", "00000001", secrets.token_hex(4)

        def md5(text: str) -> str:
            return hashlib.md5(text.encode()).hexdigest()

        ha1 = md5(f"{self.device_id}:{params['realm']}:{self.password}")
        ha2 = md5(f"REGISTER:{uri}")
        response = md5(f"{ha1}:{params['nonce']}:{nc}:{cnonce}:auth:{ha2}")
        authorization = (
            f'Authorization: Digest username="{self.device_id}", realm="{params["realm"]}", '
            f'nonce="{params["nonce"]}", uri="{uri}", response="{response}", algorithm=MD5, '
            f'qop=auth, nc={nc}, cnonce="{cnonce}"'
        )
        return status(
            self._send("REGISTER", [authorization, f"Expires: {expires}"], to=self.device_id)
        )

    def keepalive(self) -> int:
        body = (
            '<?xml version="1.0" encoding="GB2312"?>\r\n<Notify>\r\n'
            "<CmdType>Keepalive</CmdType>\r\n"
            f"<SN>{self._cseq}</SN>\r\n<DeviceID>{self.device_id}</DeviceID>\r\n"
            "<Status>OK</Status>\r\n</Notify>\r\n"
        )
        return status(self._send("MESSAGE", ["Content-Type: Application/MANSCDP+xml"], body))

    def keep_alive_every(self, seconds: float) -> None:
        """Send keepalives from now on, as a device does, until closed."""

        def beat() -> None:
            while not self._stop.wait(seconds):
                with self._sending:
                    self.keepalive()

        threading.Thread(target=beat, daemon=True).start()

    def _device_info(self, sn: str) -> None:
        body = (
            '<?xml version="1.0" encoding="GB2312"?>\r\n<Response>\r\n'
            f"<CmdType>DeviceInfo</CmdType>\r\n<SN>{sn}</SN>\r\n<DeviceID>{self.device_id}</DeviceID>"
            "\r\n<DeviceName>模拟录像机</DeviceName>\r\n<Result>OK</Result>\r\n"
            "<Manufacturer>Simulated</Manufacturer>\r\n<Model>NVR-4</Model>\r\n"
            f"<Firmware>V4.2.0</Firmware>\r\n<Channel>{len(self.channels)}</Channel>\r\n"
            "</Response>\r\n"
        )
        with self._sending:
            sent = self._send("MESSAGE", ["Content-Type: Application/MANSCDP+xml"], body)
        assert status(sent) == 200

    def _catalog(self, sn: str) -> None:
        parts = [
            self.channels[i : i + self.per_part]
            for i in range(0, len(self.channels), self.per_part)
        ]
        for part in parts or [[]]:
            items = "".join(
                f"<Item><DeviceID>{c.id}</DeviceID><Name>{c.name}</Name>"
                f"<Manufacturer>Simulated</Manufacturer><Model>NVR-4</Model>"
                f"<CivilCode>{DOMAIN[:6]}</CivilCode><Parental>0</Parental>"
                f"<ParentID>{c.parent_id}</ParentID><Status>{c.status}</Status>"
                "<Info><PTZType>1</PTZType></Info></Item>"
                for c in part
            )
            body = (
                '<?xml version="1.0" encoding="GB2312"?>\r\n<Response>\r\n'
                "<CmdType>Catalog</CmdType>\r\n"
                f"<SN>{sn}</SN>\r\n<DeviceID>{self.device_id}</DeviceID>\r\n"
                f"<SumNum>{len(self.channels)}</SumNum>\r\n"
                f'<DeviceList Num="{len(part)}">{items}</DeviceList>\r\n</Response>\r\n'
            )
            with self._sending:
                sent = self._send("MESSAGE", ["Content-Type: Application/MANSCDP+xml"], body)
            assert status(sent) == 200

    # -- what the device receives ------------------------------------------------------------

    def _listen(self) -> None:
        while not self._stop.is_set():
            try:
                data, source = self._sock.recvfrom(65535)
            except (TimeoutError, OSError):
                continue
            text = data.decode("gb18030", errors="replace")
            if text.startswith("SIP/2.0 "):
                with self._got:
                    self._responses.append(text)
                    self._got.notify_all()
                continue
            self.received.append(text)
            if text.startswith(("INVITE ", "ACK ", "BYE ")):
                self._media_request(text, source)
                continue
            head = text.split("\r\n\r\n", 1)[0]
            kept = ("via", "from", "to", "call-id", "cseq")
            copied = [line for line in head.split("\r\n")[1:] if line.split(":")[0].lower() in kept]
            reply = "\r\n".join(["SIP/2.0 200 OK", *copied, "Content-Length: 0", "", ""])
            self._sock.sendto(reply.encode(), source)
            query = re.search(r"<CmdType>(\w+)</CmdType>.*?<SN>(\d+)</SN>", text, re.S)
            answers = {"Catalog": self._catalog, "DeviceInfo": self._device_info}
            if text.startswith("MESSAGE ") and query and query.group(1) in answers:
                answering = answers[query.group(1)]
                threading.Thread(target=answering, args=(query.group(2),), daemon=True).start()

    # -- live video ---------------------------------------------------------------------------

    def _media_request(self, text: str, source: tuple[str, int]) -> None:
        head, _, body = text.partition("\r\n\r\n")
        call_id = header(head, "Call-ID")
        if text.startswith("ACK "):
            stream = self.streams.get(call_id)
            if stream is not None and not stream.started:
                stream.start()
            return
        if text.startswith("BYE "):
            stream = self.streams.pop(call_id, None)
            if stream is not None:
                stream.stop()
            self._sock.sendto(reply_to(head, 200 if stream else 481).encode(), source)
            return
        offer = dict(re.findall(r"(?m)^([a-z])=(.*?)\r?$", body))
        setup = re.search(r"a=setup:(\w+)", body)
        media = offer["m"].split()
        host, port, tcp = offer["c"].split()[-1], int(media[1]), media[2].startswith("TCP")
        if self.video is None:
            self._sock.sendto(reply_to(head, 488).encode(), source)
            return
        stream = Stream(self.video, int(offer["y"]), host, port,
                        "udp" if not tcp else "active" if setup and setup.group(1) == "passive"
                        else "passive")  # fmt: skip
        self.streams[call_id] = stream
        answer = (
            f"v=0\r\no={self.device_id} 0 0 IN IP4 127.0.0.1\r\ns=Play\r\n"
            f"c=IN IP4 127.0.0.1\r\nt=0 0\r\n"
            f"m=video {stream.port} {'TCP/RTP/AVP' if tcp else 'RTP/AVP'} 96\r\n"
            "a=sendonly\r\na=rtpmap:96 PS/90000\r\n"
            + (f"a=setup:{'active' if stream.mode == 'active' else 'passive'}\r\n" if tcp else "")
            + f"y={offer['y']}\r\n"
        )
        contact = f"Contact: <sip:{self.device_id}@127.0.0.1:{self.port}>"
        contact += "\r\nContent-Type: APPLICATION/SDP"
        self._sock.sendto(reply_to(head, 200, contact, answer).encode(), source)

    def hang_up(self) -> None:
        """End every stream as a device does when it stops: a BYE to the platform."""
        for call_id in list(self.streams):
            self.streams.pop(call_id).stop()
            with self._sending:
                self._send("BYE", [], call_id=call_id)


@dataclass
class Stream:
    """One INVITEd stream: the PS file's frames as RTP, from the ACK to the BYE. `mode`: udp,
    active (the device connects to the platform's port) or passive (it listens on `port`)."""

    video: Path
    ssrc: int
    host: str
    to_port: int
    mode: str
    started: bool = False
    sent_packets: int = 0

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        kind = socket.SOCK_DGRAM if self.mode == "udp" else socket.SOCK_STREAM
        self._sock = socket.socket(socket.AF_INET, kind)
        self._sock.bind(("127.0.0.1", 0))
        if self.mode == "passive":
            self._sock.listen(1)
        self.port = int(self._sock.getsockname()[1])

    def start(self) -> None:
        self.started = True
        threading.Thread(target=self._run, daemon=True).start()

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        try:
            send: Callable[[bytes], object]
            if self.mode == "active":
                self._sock.connect((self.host, self.to_port))
                send = self._sock.sendall
            elif self.mode == "passive":
                self._sock.settimeout(10)
                connection, _ = self._sock.accept()
                send = connection.sendall
            else:
                send = functools.partial(sendto, self._sock, (self.host, self.to_port))
            framed = self.mode != "udp"
            sequence, origin = 0, time.monotonic()
            while not self._stop.is_set():  # the file again and again, as a live camera
                start = time.monotonic() - origin
                for at, frame in ps_frames(self.video):
                    if self._stop.wait(max(0.0, origin + start + at - time.monotonic())):
                        return
                    pieces = [frame[i : i + 1400] for i in range(0, len(frame), 1400)]
                    for number, piece in enumerate(pieces):
                        marker = 0x80 if number == len(pieces) - 1 else 0
                        timestamp = int((start + at) * 90000) & 0xFFFFFFFF
                        packet = struct.pack("!BBHII", 0x80, marker | 96, sequence & 0xFFFF,
                                             timestamp, self.ssrc) + piece  # fmt: skip
                        send(struct.pack("!H", len(packet)) + packet if framed else packet)
                        sequence += 1
                        self.sent_packets += 1
                origin -= 0.1  # the next round starts a frame later
        except OSError:
            return
        finally:
            self._sock.close()


def sendto(sock: socket.socket, address: tuple[str, int], packet: bytes) -> None:
    sock.sendto(packet, address)


def ps_frames(path: Path) -> list[tuple[float, bytes]]:
    """A PS file cut before each video PES with a time stamp (the packs and headers before it
    go with it): (its PTS in seconds from the first, its bytes)."""
    data = path.read_bytes()
    frames: list[tuple[float, bytearray]] = []
    waiting = bytearray()  # pack and system headers, stream maps: they go with the next frame
    offset, first = 0, None
    while offset + 4 <= len(data) and data[offset : offset + 3] == b"\x00\x00\x01":
        code = data[offset + 3]
        if code == 0xBA:  # a pack header: 14 bytes and its stuffing
            size = 14 + (data[offset + 13] & 7)
        elif code == 0xB9:  # the end
            break
        else:
            size = 6 + int.from_bytes(data[offset + 4 : offset + 6], "big")
        unit = data[offset : offset + size]
        if 0xE0 <= code <= 0xEF and unit[7] & 0x80:  # a video PES with a PTS starts a frame
            pts = ((unit[9] >> 1) & 7) << 30 | unit[10] << 22 | (unit[11] >> 1) << 15
            pts |= unit[12] << 7 | unit[13] >> 1
            first = pts if first is None else first
            frames.append(((pts - first) / 90000, waiting + unit))
            waiting = bytearray()
        elif 0xE0 <= code <= 0xEF and frames:
            frames[-1][1].extend(waiting + unit)
            waiting = bytearray()
        else:
            waiting += unit
        offset += size
    return [(at, bytes(frame)) for at, frame in frames]


def mux_ps(source: Path, target: Path) -> Path:
    """`source`'s H.264 video muxed into an MPEG program stream by GStreamer's `mpegpsmux`."""
    pipeline = (
        f"filesrc location={source} ! qtdemux ! h264parse config-interval=-1 ! mpegpsmux ! "
        f"filesink location={target}"
    )
    script = (
        "import sys, gi; gi.require_version('Gst', '1.0'); from gi.repository import Gst\n"
        "Gst.init(None); p = Gst.parse_launch(sys.argv[1]); p.set_state(Gst.State.PLAYING)\n"
        "m = p.get_bus().timed_pop_filtered(60 * Gst.SECOND, "
        "Gst.MessageType.EOS | Gst.MessageType.ERROR)\n"
        "p.set_state(Gst.State.NULL); sys.exit(0 if m and m.type == Gst.MessageType.EOS else 1)"
    )
    subprocess.run([SYSTEM_PYTHON, "-c", script, pipeline], check=True, timeout=120)
    return target


def header(head: str, name: str) -> str:
    found = re.search(rf"(?im)^{name}:\s*(.*?)\s*$", head)
    return found.group(1) if found else ""


def reply_to(head: str, code: int, extra: str = "", body: str = "") -> str:
    """A response to the request whose headers are `head` (a To tag added)."""
    kept = ("via", "from", "to", "call-id", "cseq")
    copied = [line for line in head.split("\r\n")[1:] if line.split(":")[0].lower() in kept]
    copied = [line + ";tag=sim" if line.lower().startswith("to:") and "tag=" not in line
              else line for line in copied]  # fmt: skip
    reason = {200: "OK", 481: "Call/Transaction Does Not Exist", 488: "Not Acceptable Here"}
    lines = [f"SIP/2.0 {code} {reason[code]}", *copied, *([extra] if extra else []),
             f"Content-Length: {len(body)}", "", body]  # fmt: skip
    return "\r\n".join(lines)


def status(response: str) -> int:
    return int(response.split(" ", 2)[1])
