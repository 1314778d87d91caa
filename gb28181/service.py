"""The signalling service: what the platform answers each SIP request a device sends, what it
asks devices, and the UDP and TCP servers that carry both.

This part takes registrations (digest, expiry, re-register, unregister, pending devices),
keepalives (online, offline after missed ones) and catalogs (asked of each approved device,
answered in parts); answers are built from the request alone, so a retransmitted request gets
the same answer."""

from __future__ import annotations

import asyncio
import itertools
import logging
import re
import secrets
import time
import xml.etree.ElementTree as ElementTree
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import cast
from zoneinfo import ZoneInfo

from gb28181.config import Gb28181Config
from gb28181.digest import Nonces, challenges, expected_response, parse_authorization
from gb28181.media import MediaCalls
from gb28181.sip import SipError, SipMessage, answer, parse, request, split_head, user_of
from gb28181.transactions import ClientTransactions
from storage.database.devices import DEVICE_ID, GbChannelRow, GbDeviceRow, GbDevices, Registration
from storage.database.engine import utcnow
from storage.database.media_sessions import GbMediaSessions

log = logging.getLogger(__name__)
XML_ENCODING = re.compile(rb"""^\s*<\?xml[^>]*encoding\s*=\s*["']([A-Za-z0-9_-]+)["']""")
VIA_TRANSPORT = re.compile(r"^SIP/2\.0/(UDP|TCP)\s", re.IGNORECASE)
ALLOWED = "REGISTER, MESSAGE, OPTIONS, ACK, BYE"
MEDIA_POLL_S = 0.1  # how often the workers' offers and releases are looked for
CATALOG_RETRY_S = 30.0  # a catalog not whole this long after asking is asked for again
CATALOG_REFRESH = timedelta(days=1)  # a whole catalog is asked for again this much later
MAX_CHANNELS = 100_000  # in one device's catalog (a lower platform's tree)
NODE_ID = re.compile(r"^\d{2,20}$")  # a channel's, or a tree node's (a civil code is shorter)
Address = tuple[str, int]
Sender = Callable[[str, Address, bytes], None]  # (transport, where, what)


@dataclass
class CatalogParts:
    """The parts of one catalog answer received so far."""

    total: int
    received: int = 0  # items, valid or not: the answer is whole when all are in
    channels: dict[str, GbChannelRow] = field(default_factory=dict)


def text_of(item: ElementTree.Element, name: str, limit: int) -> str:
    return (item.findtext(name) or "").strip()[:limit]


def number_of(item: ElementTree.Element, name: str) -> float | None:
    try:
        return float(item.findtext(name) or "")
    except ValueError:
        return None


def channel_of(device_id: str, item: ElementTree.Element) -> GbChannelRow | None:
    """A catalog `<Item>` as a channel row; None for an item without a valid DeviceID."""
    channel_id = text_of(item, "DeviceID", 20)
    if not NODE_ID.match(channel_id):
        return None
    ptz = number_of(item, "Info/PTZType")
    return GbChannelRow(
        device_id=device_id,
        id=channel_id,
        name=text_of(item, "Name", 128),
        manufacturer=text_of(item, "Manufacturer", 64),
        model=text_of(item, "Model", 64),
        civil_code=text_of(item, "CivilCode", 20),
        parent_id=text_of(item, "ParentID", 128),
        business_group_id=text_of(item, "BusinessGroupID", 20),
        address=text_of(item, "Address", 128),
        status=text_of(item, "Status", 8).upper(),
        parental=text_of(item, "Parental", 1) == "1",
        ptz_type=int(ptz) if ptz is not None else None,
        longitude=number_of(item, "Longitude"),
        latitude=number_of(item, "Latitude"),
    )


def query_body(command: str, sn: int, device_id: str) -> bytes:
    """A MANSCDP query (Catalog, DeviceInfo, DeviceStatus, ...), in GB2312 as devices expect."""
    text = (
        '<?xml version="1.0" encoding="GB2312"?>\r\n<Query>\r\n'
        f"<CmdType>{command}</CmdType>\r\n<SN>{sn}</SN>\r\n<DeviceID>{device_id}</DeviceID>\r\n"
        "</Query>\r\n"
    )
    return text.encode("gb18030")


def xml_of(body: bytes) -> ElementTree.Element:
    """A MANSCDP body: XML in GB2312 (read as its superset GB18030) or UTF-8, as its
    declaration says; SipError 400 if it is not XML."""
    declared = XML_ENCODING.match(body)
    encoding = declared.group(1).decode().lower() if declared else "utf-8"
    codec = "gb18030" if encoding in ("gb2312", "gbk", "gb18030") else "utf-8"
    try:
        text = body.decode(codec)
        return ElementTree.fromstring(re.sub(r"^\s*<\?xml[^>]*\?>", "", text))
    except (UnicodeDecodeError, ElementTree.ParseError):
        raise SipError(400, "the body is not XML in its declared encoding") from None


class SourceBudgets:
    """A token bucket per source address: `rate_per_s` on average, `burst` at once; a flood
    from one address is dropped there, and the others are served as before.

    Example:
        >>> budgets = SourceBudgets(rate_per_s=1.0, burst=2)
        >>> [budgets.take("10.0.0.9", now=0.0) for _ in range(3)], budgets.take("10.0.0.9", 1.0)
        ([True, True, False], True)
    """

    def __init__(self, rate_per_s: float, burst: int) -> None:
        self.rate_per_s = rate_per_s
        self.burst = burst
        self._tokens: dict[str, tuple[float, float]] = {}  # address -> (tokens, when)

    def take(self, address: str, now: float | None = None) -> bool:
        now = time.monotonic() if now is None else now
        tokens, then = self._tokens.get(address, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - then) * self.rate_per_s)
        if len(self._tokens) > 100_000:  # spoofed sources: forget the full buckets
            self._tokens = {a: t for a, t in self._tokens.items() if t[0] < self.burst}
        self._tokens[address] = (tokens - 1.0 if tokens >= 1.0 else tokens, now)
        return tokens >= 1.0


class Signalling:
    """Answers devices' SIP requests. `refused` counts what was turned away, by reason.

    Example:
        >>> signalling = Signalling(Gb28181Config(), devices)  # doctest: +SKIP
        >>> signalling.handle(datagram, "UDP", ("10.0.0.9", 5060))  # doctest: +SKIP
        b'SIP/2.0 401 Unauthorized\\r\\n...'
    """

    def __init__(
        self, config: Gb28181Config, devices: GbDevices, sessions: GbMediaSessions
    ) -> None:
        self.config = config
        self.devices = devices
        self.transactions = ClientTransactions()
        self.media = MediaCalls(config, devices, sessions, self.transactions)
        self.sessions = sessions
        self.send: Sender | None = None  # set by `serve`, which holds the sockets
        self._sn = itertools.count(1)
        self._cseq = itertools.count(1)
        self._catalogs: dict[tuple[str, str], CatalogParts] = {}  # (device, SN) -> parts
        self._asked: dict[str, float] = {}  # device -> when its catalog was last asked for
        self.nonces = Nonces(config.nonce_s)
        self.refused: Counter[str] = Counter()
        self.zone = ZoneInfo(config.timezone)
        self.budgets = SourceBudgets(config.source_rate_per_s, config.source_burst)
        self._tag = secrets.token_hex(4)
        self._handlers: dict[str, Callable[[SipMessage, str, Address], bytes]] = {
            "REGISTER": self.register,
            "MESSAGE": self.message,
            "OPTIONS": lambda request, _t, _s: answer(request, 200, "OK", [("Allow", ALLOWED)]),
            "BYE": self.bye,
        }

    def handle(self, data: bytes, transport: str, source: Address) -> bytes | None:
        """The answer to one message (None: a response, or nothing worth answering)."""
        if not self.budgets.take(source[0]):
            self.refused["over the per-address rate"] += 1
            return None
        try:
            request = parse(data, self.config.max_message_bytes)
        except SipError as exc:
            self.refused[f"malformed: {exc.reason}"] += 1
            return None  # without its Via there is nowhere to answer
        if request.method is None:
            self.transactions.response(request)  # an answer to one of our requests
            return None
        if request.method == "ACK":
            return None  # we never answer a device's INVITE: nothing to acknowledge
        handler = self._handlers.get(request.method)
        if handler is None:
            self.refused["method not allowed"] += 1
            return answer(request, 405, "Method Not Allowed", [("Allow", ALLOWED)])
        try:
            return handler(request, transport, source)
        except SipError as exc:
            self.refused[exc.reason] += 1
            return answer(request, exc.status, exc.reason, to_tag=self._tag)

    # -- REGISTER --------------------------------------------------------------------------

    def register(self, request: SipMessage, transport: str, source: Address) -> bytes:
        device_id = user_of(request.header("to") or "")
        if device_id is None or not DEVICE_ID.match(device_id):
            raise SipError(400, "the To URI's user is not a 20-digit device ID")
        if user_of(request.header("from") or "") != device_id:
            raise SipError(400, "the From and To URIs name different devices")
        expires = self._expires(request)
        if 0 < expires < self.config.expires_min_s:
            self.refused["interval too brief"] += 1
            return answer(request, 423, "Interval Too Brief",
                          [("Min-Expires", str(self.config.expires_min_s))], self._tag)  # fmt: skip
        authorization = request.header("authorization")
        if authorization is None:
            return self._challenge(request)
        params = parse_authorization(authorization)
        if params.get("username") != device_id or params.get("realm") != self.config.digest_realm:
            raise SipError(403, "Forbidden")
        verdict = self.nonces.check(params.get("nonce", ""), params.get("nc", ""))
        if verdict in ("forged", "stale"):
            return self._challenge(request, stale=verdict == "stale")
        if verdict == "replayed":
            raise SipError(403, "Forbidden")
        default = self.config.password.get_secret_value() if self.config.password else None
        presented = params.get("response", "")
        match = next(
            (
                candidate
                for candidate in self.devices.candidates(device_id, default)
                if (expected := expected_response(params, "REGISTER", candidate.password))
                and secrets.compare_digest(expected, presented)
            ),
            None,
        )
        if match is None:
            log.info("device %s: REGISTER with a wrong password, from %s", device_id, source[0])
            raise SipError(403, "Forbidden")
        if expires == 0:
            self.devices.unregistered(device_id)
            log.info("device %s unregistered", device_id)
            return answer(request, 200, "OK", [("Expires", "0")], self._tag)
        expires = min(expires, self.config.expires_max_s)
        via = VIA_TRANSPORT.match(request.header("via") or "")
        registration = Registration(
            device_id=device_id,
            transport=via.group(1).upper() if via else transport,
            host=source[0],
            port=source[1],
            user_agent=request.header("user-agent") or "",
            expires_at=utcnow() + timedelta(seconds=expires),
        )
        row = self.devices.registered(registration, match.site)
        log.info(
            "device %s registered (%s) for %d s from %s", device_id, row.state, expires, source[0]
        )
        headers = [("Expires", str(expires)), ("Date", self._date())]
        contact = request.header("contact")
        if contact:
            headers.insert(0, ("Contact", contact))
        return answer(request, 200, "OK", headers, self._tag)

    def _expires(self, request: SipMessage) -> int:
        contact_expires = re.search(r";\s*expires=(\d+)", request.header("contact") or "")
        value = request.header("expires") or (
            contact_expires.group(1) if contact_expires else "3600"
        )
        if not value.isdigit() or len(value) > 9:
            raise SipError(400, "the Expires value is not a number of seconds")
        return int(value)

    def _challenge(self, request: SipMessage, stale: bool = False) -> bytes:
        headers = list(challenges(self.config.digest_realm, self.nonces.issue(), stale))
        return answer(request, 401, "Unauthorized", headers, self._tag)

    def _date(self) -> str:
        """GB/T 28181's Date: local time to the millisecond, without a zone."""
        return datetime.now(self.zone).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3]

    def bye(self, request: SipMessage, transport: str, source: Address) -> bytes:
        if not self.media.device_bye(request):
            return answer(request, 481, "Call/Transaction Does Not Exist", to_tag=self._tag)
        log.info("device %s ended a stream", user_of(request.header("from") or ""))
        return answer(request, 200, "OK", to_tag=self._tag)

    # -- MESSAGE ---------------------------------------------------------------------------

    def message(self, request: SipMessage, transport: str, source: Address) -> bytes:
        device_id = user_of(request.header("from") or "")
        if device_id is None or not DEVICE_ID.match(device_id):
            raise SipError(400, "the From URI's user is not a 20-digit device ID")
        document = xml_of(request.body)
        command = (document.findtext("CmdType") or "").strip()
        if document.tag == "Notify" and command == "Keepalive":  # the busiest: one statement
            if not self.devices.kept_alive(device_id, source[0]):
                raise SipError(403, "Forbidden")  # not registered, or not from where it did
            return answer(request, 200, "OK", to_tag=self._tag)
        device = self.devices.get(device_id)
        if device is None or device.host != source[0]:
            raise SipError(403, "Forbidden")
        if document.tag == "Response" and command == "Catalog":
            self._catalog_part(device_id, document)
        elif document.tag == "Response" and command == "DeviceInfo":
            count = number_of(document, "Channel")
            self.devices.described(
                device_id,
                text_of(document, "Manufacturer", 64),
                text_of(document, "Model", 64),
                text_of(document, "Firmware", 64),
                int(count) if count is not None and 0 <= count <= MAX_CHANNELS else None,
            )
        else:
            log.debug("device %s: %s %s not handled yet", device_id, document.tag, command)
        return answer(request, 200, "OK", to_tag=self._tag)

    def _catalog_part(self, device_id: str, document: ElementTree.Element) -> None:
        """One part of a catalog answer; the whole catalog is stored once all parts are in."""
        sn = text_of(document, "SN", 20)
        total = number_of(document, "SumNum")
        if total is None or not 0 <= total <= MAX_CHANNELS:
            raise SipError(400, "the catalog's SumNum is not a count")
        parts = self._catalogs.setdefault((device_id, sn), CatalogParts(int(total)))
        for item in document.iterfind("DeviceList/Item"):
            parts.received += 1
            channel = channel_of(device_id, item)
            if channel is None:
                self.refused["a catalog item without a valid DeviceID"] += 1
            elif len(parts.channels) < MAX_CHANNELS:
                parts.channels[channel.id] = channel
        if parts.received >= parts.total:
            del self._catalogs[(device_id, sn)]
            self._asked.pop(device_id, None)
            self.devices.catalog(device_id, list(parts.channels.values()))
            log.info("device %s: catalog of %d channel(s)", device_id, len(parts.channels))

    def query_catalogs(self) -> None:
        """Ask each approved device online for what it is (DeviceInfo) and its catalog, unless
        it gave a whole catalog lately or was asked less than CATALOG_RETRY_S ago."""
        now = time.monotonic()
        for device in self.devices.needing_catalog(utcnow() - CATALOG_REFRESH):
            if now - self._asked.get(device.id, -CATALOG_RETRY_S) < CATALOG_RETRY_S:
                continue
            self._asked[device.id] = now
            for stale in [key for key in self._catalogs if key[0] == device.id]:
                del self._catalogs[stale]  # parts of an answer that never became whole
            for command in ("DeviceInfo", "Catalog"):
                body = query_body(command, next(self._sn), device.id)
                self.ask(device, "MESSAGE", body, [("Content-Type", "Application/MANSCDP+xml")])

    def ask(
        self, device: GbDeviceRow, method: str, body: bytes, headers: list[tuple[str, str]]
    ) -> None:
        """Send a request of ours to a device, where and how it registered from."""
        if self.send is None:
            return
        ours = self.config.address or self.config.host
        data = request(
            method,
            f"sip:{device.id}@{device.host}:{device.port}",
            (device.transport, ours, self.config.port),
            f"sip:{self.config.id}@{self.config.domain}",
            f"sip:{device.id}@{self.config.domain}",
            next(self._cseq),
            headers,
            body,
        )
        self.send(device.transport, (device.host, device.port), data)

    def sweep(self) -> list[str]:
        """Devices whose registration expired, or that missed `keepalive_misses` keepalives,
        are offline now."""
        now = utcnow()
        silence = timedelta(seconds=self.config.keepalive_s * self.config.keepalive_misses)
        lapsed = self.devices.lapse(now - silence, now)
        self.sessions.devices_offline(lapsed)
        for device_id in lapsed:
            log.warning("device %s is offline", device_id)
        return lapsed


class UdpServer(asyncio.DatagramProtocol):
    def __init__(self, signalling: Signalling) -> None:
        self.signalling = signalling
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: Address) -> None:
        reply = self.signalling.handle(data, "UDP", (addr[0], addr[1]))
        if reply is not None and self.transport is not None:
            self.transport.sendto(reply, addr)


async def tcp_connection(
    signalling: Signalling,
    connections: dict[Address, asyncio.StreamWriter],
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
) -> None:
    """Messages one after another on a TCP connection, each cut by its Content-Length; our
    requests to the device go back on it (`connections`, by its address)."""
    peer = writer.get_extra_info("peername")
    source: Address = (str(peer[0]), int(peer[1]))
    connections[source] = writer
    limit = signalling.config.max_message_bytes
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            split = split_head(head)
            assert split is not None
            length = re.search(rb"(?im)^(?:content-length|l)\s*:\s*(\d{1,7})\s*$", split[0])
            size = int(length.group(1)) if length else 0
            if len(head) + size > limit:
                signalling.refused["malformed: Message Too Large"] += 1
                break
            body = await reader.readexactly(size)
            reply = signalling.handle(head + body, "TCP", source)
            if reply is not None:
                writer.write(reply)
                await writer.drain()
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
        pass
    finally:
        connections.pop(source, None)
        writer.close()


async def serve(config: Gb28181Config, signalling: Signalling, stop: asyncio.Event) -> None:
    """Serve UDP and TCP on `config.host`:`config.port` until `stop` is set; every few
    seconds meanwhile, sweep for offline devices and ask for the catalogs due."""
    loop = asyncio.get_running_loop()
    udp, _ = await loop.create_datagram_endpoint(
        lambda: UdpServer(signalling), local_addr=(config.host, config.port)
    )
    connections: dict[Address, asyncio.StreamWriter] = {}

    def send(transport: str, address: Address, data: bytes) -> None:
        if transport != "TCP":
            udp.sendto(data, address)
        elif (writer := connections.get(address)) is not None:
            writer.write(data)  # a device on TCP is reached on the connection it registered on

    signalling.send = signalling.transactions.send = send
    tcp = await asyncio.start_server(
        lambda r, w: tcp_connection(signalling, connections, r, w),
        config.host,
        config.port,
        limit=config.max_message_bytes,
    )
    log.info("GB/T 28181 signalling %s on %s:%d (UDP, TCP)", config.id, config.host, config.port)
    sweep_every = max(1, round(min(5.0, config.keepalive_s / 2) / MEDIA_POLL_S))
    try:
        for round_number in itertools.count(1):
            try:
                await asyncio.wait_for(stop.wait(), MEDIA_POLL_S)
                break
            except TimeoutError:
                signalling.media.poll()  # the workers wait on it: polled often
                signalling.transactions.tick()
                if round_number % sweep_every == 0:
                    signalling.sweep()
                    signalling.query_catalogs()
    finally:
        udp.close()
        tcp.close()
        await tcp.wait_closed()
