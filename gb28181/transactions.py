"""Our requests to devices awaiting their final answers (RFC 3261's client transactions, the
part GB/T 28181 needs): resent over UDP until the device answers at all, given up after a
while, each final answer handed to whoever sent the request."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from gb28181.sip import SipMessage

Address = tuple[str, int]
Sender = Callable[[str, Address, bytes], None]  # (transport, where, what)
FinalAnswer = Callable[[SipMessage | None], None]  # None: no answer in time
RESEND_FIRST_S = 0.5  # then 1, 2, 4 s: RFC 3261's timer A/E doubling


@dataclass
class Pending:
    transport: str
    address: Address
    data: bytes
    cseq: int
    on_final: FinalAnswer
    deadline: float
    resend_at: float
    resends: int = 0
    provisional: bool = False


class ClientTransactions:
    """Requests sent and not finally answered, by Call-ID.

    Example:
        >>> sent = []
        >>> transactions = ClientTransactions(lambda t, a, d: sent.append(d))
        >>> transactions.start("c1", 1, "UDP", ("10.0.0.9", 5060), b"MESSAGE ...", print, 2.0,
        ...                     now=0.0)
        >>> transactions.tick(now=0.6); len(sent)
        2
        >>> transactions.tick(now=2.1)
        None
    """

    def __init__(self, send: Sender | None = None) -> None:
        self.send = send
        self._pending: dict[str, Pending] = {}

    def start(
        self,
        call_id: str,
        cseq: int,
        transport: str,
        address: Address,
        data: bytes,
        on_final: FinalAnswer,
        timeout_s: float,
        now: float | None = None,
    ) -> None:
        """Send `data` and await its final answer for `timeout_s`."""
        now = time.monotonic() if now is None else now
        self._pending[call_id] = Pending(transport, address, data, cseq, on_final,
                                         now + timeout_s, now + RESEND_FIRST_S)  # fmt: skip
        self._send(transport, address, data)

    def _send(self, transport: str, address: Address, data: bytes) -> None:
        if self.send is not None:
            self.send(transport, address, data)

    def response(self, message: SipMessage) -> None:
        """A device's answer: a provisional one stops the resending, a final one ends it."""
        call_id = message.header("call-id") or ""
        pending = self._pending.get(call_id)
        if pending is None or message.status is None or message.cseq()[0] != pending.cseq:
            return  # a late or stray answer
        if message.status < 200:
            pending.provisional = True
            return
        del self._pending[call_id]
        pending.on_final(message)

    def tick(self, now: float | None = None) -> None:
        """Resend what is due over UDP; give up what is past its time (its `on_final(None)`)."""
        now = time.monotonic() if now is None else now
        for call_id, pending in list(self._pending.items()):
            if now >= pending.deadline:
                del self._pending[call_id]
                pending.on_final(None)
            elif (
                pending.transport == "UDP" and not pending.provisional and now >= pending.resend_at
            ):
                pending.resends += 1
                pending.resend_at = now + RESEND_FIRST_S * 2**pending.resends
                self._send(pending.transport, pending.address, pending.data)
