"""A simulated GB/T 28181 device for tests: a SIP user agent over UDP that registers with digest,
keeps alive and answers the platform's queries (its catalog in parts, as NVRs send it).

It shares no code with the platform's SIP parser (`gb28181/`): its messages are written and
read with plain string handling here, so that the two do not agree by sharing a mistake. SIPp
covers registration and keepalive independently (tests/sipp/)."""

from __future__ import annotations

import hashlib
import re
import secrets
import socket
import threading
from dataclasses import dataclass, field

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
    received: list[str] = field(default_factory=list)  # the platform's requests, as text
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
        self._stop.set()
        self._thread.join(5)
        self._sock.close()

    # -- what the device sends ---------------------------------------------------------------

    def _send(self, method: str, extra: list[str], body: str = "", to: str | None = None) -> str:
        self._cseq += 1
        to_user = to or PLATFORM_ID
        lines = [
            f"{method} sip:{PLATFORM_ID}@{DOMAIN} SIP/2.0",
            f"Via: SIP/2.0/UDP 127.0.0.1:{self.port};rport;branch=z9hG4bK{secrets.token_hex(6)}",
            f"From: <sip:{self.device_id}@{DOMAIN}>;tag={secrets.token_hex(4)}",
            f"To: <sip:{to_user}@{DOMAIN}>",
            f"Call-ID: {secrets.token_hex(8)}@127.0.0.1",
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
            assert (
                status(self._send("MESSAGE", ["Content-Type: Application/MANSCDP+xml"], body))
                == 200
            )

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


def status(response: str) -> int:
    return int(response.split(" ", 2)[1])
