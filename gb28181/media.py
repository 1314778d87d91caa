"""Live video sessions: the platform INVITEs a device on behalf of the worker that receives
(storage/database/media_sessions.py carries the offer and the answer between them), ACKs its
answer, and says BYE when the worker releases the channel.

The offer is the standard's: `s=Play`, the worker's address and port, PS over RTP (payload
type 96, PS/90000) over UDP or TCP (`a=setup:passive` when the worker listens, `active` when it
connects), and `y=` the SSRC the platform gives the stream: "0" for live, the 4th to 8th
digits of the domain, then a sequence number."""

from __future__ import annotations

import functools
import itertools
import logging
import re

from gb28181.config import Gb28181Config
from gb28181.sip import Dialog, SipMessage, request, tag_of
from gb28181.transactions import ClientTransactions
from storage.database.devices import GbDeviceRow, GbDevices
from storage.database.media_sessions import DeviceAnswer, GbMediaRow, GbMediaSessions

log = logging.getLogger(__name__)
INVITE_TIMEOUT_S = 8.0  # no final answer this long after the INVITE: the device failed
SDP_LINE = re.compile(r"^([a-z])=(.*)$")
HOST = re.compile(r"^[0-9A-Za-z.:-]{1,64}$")


def offer_sdp(platform_id: str, host: str, port: int, transport: str, ssrc: str) -> bytes:
    """The SDP of an INVITE for live video sent to `host`:`port`.

    Example:
        >>> print(offer_sdp("34020000002000000001", "10.0.0.2", 30000, "UDP", "0200000001")
        ...       .decode().replace("\\r", ""))
        v=0
        o=34020000002000000001 0 0 IN IP4 10.0.0.2
        s=Play
        c=IN IP4 10.0.0.2
        t=0 0
        m=video 30000 RTP/AVP 96
        a=recvonly
        a=rtpmap:96 PS/90000
        y=0200000001
        <BLANKLINE>
    """
    tcp = transport.startswith("TCP")
    lines = [
        "v=0",
        f"o={platform_id} 0 0 IN IP4 {host}",
        "s=Play",
        f"c=IN IP4 {host}",
        "t=0 0",
        f"m=video {port} {'TCP/RTP/AVP' if tcp else 'RTP/AVP'} 96",
        "a=recvonly",
        "a=rtpmap:96 PS/90000",
    ]
    if tcp:
        setup = "passive" if transport == "TCP-passive" else "active"
        lines += [f"a=setup:{setup}", "a=connection:new"]
    lines.append(f"y={ssrc}")
    return ("\r\n".join(lines) + "\r\n").encode()


def parse_answer(body: bytes, device_host: str, ssrc: str) -> DeviceAnswer:
    """The device's SDP answer: where its video comes from (`c=`, else where it registered
    from), its port (`m=`) and its SSRC (`y=`, else ours). ValueError if it makes no sense.

    Example:
        >>> parse_answer(b"v=0\\r\\nc=IN IP4 10.0.0.9\\r\\nm=video 15060 RTP/AVP 96\\r\\n"
        ...              b"y=0100000001\\r\\n", "10.0.0.9", "0200000001")
        DeviceAnswer(host='10.0.0.9', port=15060, ssrc='0100000001', device_host='10.0.0.9')
    """
    fields: dict[str, str] = {}
    for line in body.decode("utf-8", errors="replace").splitlines():
        found = SDP_LINE.match(line.strip())
        if found is not None:
            fields.setdefault(found.group(1), found.group(2).strip())
    media = fields.get("m", "").split()
    if len(media) < 3 or media[0] != "video" or not media[1].isdigit():
        raise ValueError("the answer has no video media line")
    port = int(media[1])
    connection = fields.get("c", "").split()
    host = connection[2] if len(connection) == 3 else device_host
    if not HOST.match(host) or not 0 <= port <= 65535:
        raise ValueError("the answer's address or port is not valid")
    answered = fields.get("y", "")
    return DeviceAnswer(host, port, answered if re.fullmatch(r"\d{1,10}", answered) else ssrc,
                        device_host)  # fmt: skip


class MediaCalls:
    """The platform's INVITE sessions: started from the workers' offers, answered, ended."""

    def __init__(
        self,
        config: Gb28181Config,
        devices: GbDevices,
        sessions: GbMediaSessions,
        transactions: ClientTransactions,
    ) -> None:
        self.config = config
        self.devices = devices
        self.sessions = sessions
        self.transactions = transactions
        self._cseq = itertools.count(1)
        self._ssrc = itertools.count(1)

    @property
    def ours(self) -> tuple[str, int]:
        return self.config.address or self.config.host, self.config.port

    def _send(self, device: GbDeviceRow, data: bytes) -> None:
        if self.transactions.send is not None:
            self.transactions.send(device.transport, (device.host, device.port), data)

    def _request(self, method: str, device: GbDeviceRow, uri: str, channel_id: str, cseq: int,
                 dialog: Dialog, headers: list[tuple[str, str]] | None = None,
                 body: bytes = b"") -> bytes:  # fmt: skip
        host, port = self.ours
        domain = self.config.domain
        return request(
            method, uri, (device.transport, host, port), f"sip:{self.config.id}@{domain}",
            f"sip:{channel_id}@{domain}", cseq, headers, body, dialog,
        )  # fmt: skip

    def poll(self) -> None:
        """Act on what the workers asked: offers to INVITE, releases to BYE."""
        for row in self.sessions.pending():
            if row.dialog is not None:  # ended by the worker, or replaced by a new offer
                self._bye(row)
            if row.state == "released":
                self.sessions.forget(row.camera_id)
            else:
                self._invite(row)

    def _invite(self, row: GbMediaRow) -> None:
        device = self.devices.get(row.device_id)
        reason = (
            "the device is not known" if device is None
            else "the device is not approved" if device.state != "approved"
            else f"the device is offline ({device.offline_reason or 'not registered'})"
            if not device.online else None
        )  # fmt: skip
        if reason is not None or device is None:
            self.sessions.failed(row.camera_id, row.generation, reason or "")
            return
        ssrc = f"0{self.config.domain[3:8]}{next(self._ssrc) % 10000:04d}"
        uri = f"sip:{row.channel_id}@{device.host}:{device.port}"
        dialog = Dialog.new(self.ours[0])
        cseq = next(self._cseq)
        host, port = self.ours
        data = self._request(
            "INVITE", device, uri, row.channel_id, cseq, dialog,
            [("Contact", f"<sip:{self.config.id}@{host}:{port}>"),
             ("Content-Type", "APPLICATION/SDP"),
             ("Subject", f"{row.channel_id}:{ssrc},{self.config.id}:0")],
            offer_sdp(self.config.id, row.offer_host, row.offer_port, row.transport, ssrc),
        )  # fmt: skip
        if not self.sessions.inviting(row.camera_id, row.generation, ssrc, self._dialog_of(
                device, uri, row.channel_id, dialog, cseq)):  # fmt: skip
            return  # wanted again meanwhile: the next poll INVITEs for the newer offer
        self.transactions.start(
            dialog.call_id, cseq, device.transport, (device.host, device.port), data,
            functools.partial(self._answered, row, device, uri, dialog, cseq, ssrc),
            INVITE_TIMEOUT_S,
        )  # fmt: skip
        log.info("camera %s: INVITE sent to device %s for channel %s", row.camera_id,
                 device.id, row.channel_id)  # fmt: skip

    @staticmethod
    def _dialog_of(device: GbDeviceRow, uri: str, channel_id: str, dialog: Dialog,
                   cseq: int) -> dict[str, object]:  # fmt: skip
        return {
            "call_id": dialog.call_id, "from_tag": dialog.from_tag, "to_tag": dialog.to_tag,
            "uri": uri, "channel_id": channel_id, "cseq": cseq, "device_id": device.id,
        }  # fmt: skip

    def _answered(self, row: GbMediaRow, device: GbDeviceRow, uri: str, dialog: Dialog,
                  cseq: int, ssrc: str, message: SipMessage | None) -> None:  # fmt: skip
        """The device's final answer to our INVITE (None: none came): ACK it; keep where the
        video comes from, or why it will not."""
        if message is None or message.status is None:
            self.sessions.failed(row.camera_id, row.generation,
                                 "the device did not answer the INVITE")  # fmt: skip
            return
        to_tag = tag_of(message.header("to") or "") or ""
        contact = re.search(r"<(sips?:[^>]+)>", message.header("contact") or "")
        target = contact.group(1) if contact else uri
        refused = message.status >= 300
        dialog = dialog.next(to_tag=to_tag, same_branch=refused)
        self._send(device, self._request("ACK", device, uri if refused else target,
                                         row.channel_id, cseq, dialog))  # fmt: skip
        if refused:
            reason = f"the device refused the INVITE: {message.status} {message.reason}"
            self.sessions.failed(row.camera_id, row.generation, reason)
            log.warning("camera %s: %s", row.camera_id, reason)
            return
        record = self._dialog_of(device, target, row.channel_id, dialog, cseq)
        try:
            answer = parse_answer(message.body, device.host, ssrc)
        except ValueError as exc:
            self.sessions.failed(row.camera_id, row.generation, f"the device's answer: {exc}")
            self._bye_dialog(device, record)
            return
        if self.sessions.playing(row.camera_id, row.generation, answer, record):
            log.info("camera %s: device %s streams from %s:%d", row.camera_id, device.id,
                     answer.host, answer.port)  # fmt: skip
        else:
            self._bye_dialog(device, record)  # the worker moved on meanwhile

    def _bye(self, row: GbMediaRow) -> None:
        device = self.devices.get(row.device_id)
        if device is not None and row.dialog is not None:
            self._bye_dialog(device, row.dialog)

    def _bye_dialog(self, device: GbDeviceRow, record: dict[str, object]) -> None:
        dialog = Dialog(str(record["call_id"]), str(record["from_tag"]), str(record["to_tag"]))
        cseq = int(str(record["cseq"])) + 1
        data = self._request("BYE", device, str(record["uri"]), str(record["channel_id"]), cseq,
                             dialog.next())  # fmt: skip
        self._send(device, data)
        log.info("device %s: BYE for channel %s", device.id, record["channel_id"])

    def device_bye(self, message: SipMessage) -> bool:
        """The device ended a session (its BYE): False if no session has that Call-ID."""
        return self.sessions.ended(message.header("call-id") or "", "the device ended the stream")
