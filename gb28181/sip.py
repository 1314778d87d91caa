"""SIP messages as GB/T 28181 devices send them (RFC 3261, the part the standard uses): a strict
parser that names what is wrong, and the answers we send.

No maintained Python SIP stack exists (the libraries on PyPI are unmaintained or wrap C
stacks made for telephony); GB/T 28181 uses a small part of SIP (REGISTER, MESSAGE, INVITE,
SUBSCRIBE/NOTIFY, INFO, BYE over one UDP or TCP port), so the platform parses it itself,
strictly, and is tested against SIPp, a peer we did not write.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass, field

MAX_HEADERS = 64
COMPACT = {
    "v": "via", "f": "from", "t": "to", "i": "call-id", "m": "contact", "l": "content-length",
    "c": "content-type", "k": "supported", "s": "subject", "e": "content-encoding",
}  # fmt: skip
REQUEST_LINE = re.compile(r"^([A-Z]{3,16}) (\S{1,512}) SIP/2\.0$")
STATUS_LINE = re.compile(r"^SIP/2\.0 ([1-6]\d\d) ([^\r\n]{0,128})$")
TOKEN = re.compile(r"^[A-Za-z0-9.!%*_+`'~-]{1,64}$")
URI_USER = re.compile(r"sips?:([^@;>\s]+)@")
TAG = re.compile(r";\s*tag=([^;>\s]+)")


class SipError(Exception):
    """A message we cannot take: `status` is the answer it gets (when it can get one)."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


@dataclass(frozen=True)
class SipMessage:
    """One SIP request or response: its start line's parts, its headers in order (names
    lower-cased, compact forms expanded) and its body."""

    method: str | None  # a request's
    uri: str | None
    status: int | None  # a response's
    reason: str | None
    headers: tuple[tuple[str, str], ...]
    body: bytes = field(default=b"", repr=False)

    def header(self, name: str) -> str | None:
        """The first value of header `name` (any case), None if absent."""
        wanted = name.lower()
        return next((value for key, value in self.headers if key == wanted), None)

    def all(self, name: str) -> list[str]:
        wanted = name.lower()
        return [value for key, value in self.headers if key == wanted]

    def cseq(self) -> tuple[int, str]:
        number, _, method = (self.header("cseq") or "").partition(" ")
        return int(number), method.strip()


def split_head(data: bytes) -> tuple[bytes, bytes] | None:
    """(the head, what follows it) once a blank line ends the head; None before."""
    head, separator, rest = data.partition(b"\r\n\r\n")
    return (head, rest) if separator else None


def parse(data: bytes, max_bytes: int) -> SipMessage:
    """A whole message (a UDP datagram, or a TCP message cut by its Content-Length).

    Example:
        >>> message = parse(b"REGISTER sip:34020000002000000001@3402000000 SIP/2.0\\r\\n"
        ...                 b"Via: SIP/2.0/UDP 10.0.0.9:5060;branch=z9hG4bK1\\r\\n"
        ...                 b"f: <sip:34020000001320000001@3402000000>;tag=1\\r\\n"
        ...                 b"To: <sip:34020000001320000001@3402000000>\\r\\n"
        ...                 b"Call-ID: 1@10.0.0.9\\r\\nCSeq: 1 REGISTER\\r\\n"
        ...                 b"Content-Length: 0\\r\\n\\r\\n",
        ...                 max_bytes=65535)
        >>> message.method, message.cseq(), user_of(message.header("from") or "")
        ('REGISTER', (1, 'REGISTER'), '34020000001320000001')
    """
    if len(data) > max_bytes:
        raise SipError(513, "Message Too Large")
    split = split_head(data)
    if split is None:
        raise SipError(400, "the message has no end of its headers")
    head, body = split
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        raise SipError(400, "the headers are not UTF-8") from None
    lines = text.split("\r\n")
    start, header_lines = lines[0], lines[1:]
    if len(header_lines) > MAX_HEADERS:
        raise SipError(400, "too many headers")
    headers: list[tuple[str, str]] = []
    for line in header_lines:
        if line[:1] in (" ", "\t") and headers:  # a folded line continues the header before
            name, value = headers[-1]
            headers[-1] = (name, f"{value} {line.strip()}")
            continue
        name, colon, value = line.partition(":")
        name = name.strip().lower()
        if not colon or not TOKEN.match(name):
            raise SipError(400, "a header line is not 'Name: value'")
        if any(ord(character) < 32 and character != "\t" for character in value):
            raise SipError(400, f"header {name} holds a control character")
        headers.append((COMPACT.get(name, name), value.strip()))
    request, response = REQUEST_LINE.match(start), STATUS_LINE.match(start)
    if request is None and response is None:
        raise SipError(400, "the first line is neither a SIP request nor a response")
    message = SipMessage(
        method=request.group(1) if request else None,
        uri=request.group(2) if request else None,
        status=int(response.group(1)) if response else None,
        reason=response.group(2) if response else None,
        headers=tuple(headers),
        body=body,
    )
    for name in ("via", "from", "to", "call-id", "cseq"):
        if message.header(name) is None:
            raise SipError(400, f"the {name} header is missing")
    try:
        number, method = message.cseq()
    except ValueError:
        raise SipError(400, "the CSeq header is not 'number METHOD'") from None
    if request is not None and method != message.method:
        raise SipError(400, "the CSeq method is not the request's")
    if not 0 <= number < 2**31:
        raise SipError(400, "the CSeq number is out of range")
    declared = message.header("content-length")
    if declared is not None:
        if not declared.isdigit() or int(declared) > len(body):
            raise SipError(400, "the Content-Length is not the body's")
        message = SipMessage(message.method, message.uri, message.status, message.reason,
                             message.headers, body[: int(declared)])  # fmt: skip
    return message


def user_of(name_addr: str) -> str | None:
    """The user part of the URI in a From, To or Contact value (a device's 20-digit ID)."""
    found = URI_USER.search(name_addr)
    return found.group(1) if found else None


def tag_of(name_addr: str) -> str | None:
    found = TAG.search(name_addr)
    return found.group(1) if found else None


def answer(
    request: SipMessage,
    status: int,
    reason: str,
    headers: list[tuple[str, str]] | None = None,
    to_tag: str | None = None,
    body: bytes = b"",
) -> bytes:
    """The response to `request`: its Via, From, To (with `to_tag` if it had none), Call-ID
    and CSeq copied as RFC 3261 says, then `headers`, then the body."""
    to = request.header("to") or ""
    if to_tag and tag_of(to) is None:
        to = f"{to};tag={to_tag}"
    lines = [f"SIP/2.0 {status} {reason}"]
    lines += [f"Via: {via}" for via in request.all("via")]
    lines += [f"From: {request.header('from')}", f"To: {to}"]
    lines += [f"Call-ID: {request.header('call-id')}", f"CSeq: {request.header('cseq')}"]
    lines += [f"{name}: {value}" for name, value in headers or []]
    lines += ["User-Agent: Xueliang", f"Content-Length: {len(body)}", "", ""]
    return "\r\n".join(lines).encode() + body


def request(
    method: str,
    uri: str,
    via: tuple[str, str, int],
    from_uri: str,
    to_uri: str,
    cseq: int,
    headers: list[tuple[str, str]] | None = None,
    body: bytes = b"",
    dialog: Dialog | None = None,
) -> bytes:
    """A request of ours: `via` is (transport, our address, our port). Outside a dialog, a new
    branch, From tag and Call-ID each time; inside `dialog`, its own.

    Example:
        >>> request("MESSAGE", "sip:34020000001320000001@10.0.0.9:5060", ("UDP", "10.0.0.1", 5060),
        ...         "sip:34020000002000000001@3402000000", "sip:34020000001320000001@3402000000",
        ...         1).split(b"\\r\\n")[0]
        b'MESSAGE sip:34020000001320000001@10.0.0.9:5060 SIP/2.0'
    """
    transport, host, port = via
    dialog = dialog or Dialog.new(host)
    to = f"<{to_uri}>" + (f";tag={dialog.to_tag}" if dialog.to_tag else "")
    lines = [
        f"{method} {uri} SIP/2.0",
        f"Via: SIP/2.0/{transport} {host}:{port};rport;branch={dialog.branch}",
        f"From: <{from_uri}>;tag={dialog.from_tag}",
        f"To: {to}",
        f"Call-ID: {dialog.call_id}",
        f"CSeq: {cseq} {method}",
        "Max-Forwards: 70",
        *(f"{name}: {value}" for name, value in headers or []),
        "User-Agent: Xueliang",
        f"Content-Length: {len(body)}",
        "",
        "",
    ]
    return "\r\n".join(lines).encode() + body


@dataclass(frozen=True)
class Dialog:
    """What ties our requests together: the Call-ID, our From tag, the peer's To tag (once it
    answered) and the branch of the transaction (an ACK of a refusal reuses the INVITE's)."""

    call_id: str
    from_tag: str
    to_tag: str = ""
    branch: str = ""

    @classmethod
    def new(cls, host: str) -> Dialog:
        return cls(f"{secrets.token_hex(8)}@{host}", secrets.token_hex(4), "", new_branch())

    def next(self, to_tag: str | None = None, same_branch: bool = False) -> Dialog:
        """The dialog for the next request in it (a new branch unless `same_branch`)."""
        return Dialog(self.call_id, self.from_tag, to_tag if to_tag is not None else self.to_tag,
                      self.branch if same_branch else new_branch())  # fmt: skip


def new_branch() -> str:
    return f"z9hG4bK{secrets.token_hex(8)}"
