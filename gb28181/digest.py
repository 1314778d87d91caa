"""Digest authentication of REGISTER (RFC 2617 MD5, as every GB/T 28181 device does; RFC 7616
SHA-256 where a device answers with it), with nonces that expire and cannot be replayed.

A nonce carries its own issue time and an HMAC of it under a key of this process, so any
nonce we did not make, or made too long ago, is refused without keeping state; a (nonce, nc)
pair once accepted is refused the second time (a replayed REGISTER)."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import threading
import time
from collections.abc import Iterable

ALGORITHMS = {"MD5": hashlib.md5, "SHA-256": hashlib.sha256}
PARAMETER = re.compile(r'\s*([A-Za-z0-9_-]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^,\s]*)\s*,?')


def digest_hex(algorithm: str, text: str) -> str:
    return ALGORITHMS[algorithm](text.encode()).hexdigest()


def parse_authorization(value: str) -> dict[str, str]:
    """The parameters of an `Authorization: Digest ...` header (lower-case names).

    Example:
        >>> parse_authorization('Digest username="3402", realm="3402000000", nc=00000001')
        {'username': '3402', 'realm': '3402000000', 'nc': '00000001'}
    """
    scheme, _, rest = value.strip().partition(" ")
    if scheme.lower() != "digest":
        return {}
    return {
        name.lower(): raw[1:-1].replace('\\"', '"') if raw.startswith('"') else raw
        for name, raw in PARAMETER.findall(rest)
    }


def expected_response(params: dict[str, str], method: str, password: str) -> str | None:
    """The response a device knowing `password` sends with `params` (None: not computable,
    e.g. an unknown algorithm).

    Example (RFC 2617's):
        >>> expected_response({"username": "Mufasa", "realm": "testrealm@host.com",
        ...     "nonce": "dcd98b7102dd2f0e8b11d0f600bfb0c093", "uri": "/dir/index.html",
        ...     "qop": "auth", "nc": "00000001", "cnonce": "0a4f113b"}, "GET", "Circle Of Life")
        '6629fae49393a05397450978507c4ef1'
    """
    algorithm = params.get("algorithm", "MD5").upper()
    if algorithm not in ALGORITHMS:
        return None
    fields = [params.get(name) for name in ("username", "realm", "nonce", "uri")]
    if any(value is None for value in fields):
        return None
    username, realm, nonce, uri = fields
    ha1 = digest_hex(algorithm, f"{username}:{realm}:{password}")
    ha2 = digest_hex(algorithm, f"{method}:{uri}")
    qop = params.get("qop")
    if qop is None:
        return digest_hex(algorithm, f"{ha1}:{nonce}:{ha2}")
    if qop != "auth" or "nc" not in params or "cnonce" not in params:
        return None
    return digest_hex(algorithm, f"{ha1}:{nonce}:{params['nc']}:{params['cnonce']}:{qop}:{ha2}")


class Nonces:
    """Issues nonces valid for `lifetime_s` and tells whether one is ours, stale or replayed.

    Example:
        >>> nonces = Nonces(lifetime_s=60)
        >>> nonce = nonces.issue()
        >>> nonces.check(nonce, "00000001"), nonces.check(nonce, "00000001")
        ('ok', 'replayed')
    """

    def __init__(self, lifetime_s: float) -> None:
        self.lifetime_s = lifetime_s
        self._key = secrets.token_bytes(32)
        self._used: dict[tuple[str, str], float] = {}
        self._lock = threading.Lock()

    def _mac(self, stamp: str, salt: str) -> str:
        return hmac.new(self._key, f"{stamp}.{salt}".encode(), hashlib.sha256).hexdigest()[:32]

    def issue(self) -> str:
        stamp, salt = str(int(time.time())), secrets.token_hex(8)
        return f"{stamp}.{salt}.{self._mac(stamp, salt)}"

    def check(self, nonce: str, nc: str) -> str:
        """'ok', 'stale' (ours, expired: the device should retry with a new one), 'forged'
        (not ours) or 'replayed' (this nonce and count were used)."""
        stamp, _, rest = nonce.partition(".")
        salt, _, mac = rest.partition(".")
        if not stamp.isdigit() or not hmac.compare_digest(mac, self._mac(stamp, salt)):
            return "forged"
        now = time.time()
        if now - int(stamp) > self.lifetime_s:
            return "stale"
        with self._lock:
            if (nonce, nc) in self._used:
                return "replayed"
            self._used[(nonce, nc)] = now
            if len(self._used) > 100_000:  # forget what has expired anyway
                self._used = {k: at for k, at in self._used.items() if now - at <= self.lifetime_s}
        return "ok"


def challenges(realm: str, nonce: str, stale: bool = False) -> Iterable[tuple[str, str]]:
    """WWW-Authenticate headers: MD5 first (devices read the first one), SHA-256 after."""
    for algorithm in ("MD5", "SHA-256"):
        value = f'Digest realm="{realm}", nonce="{nonce}", algorithm={algorithm}, qop="auth"'
        yield "WWW-Authenticate", value + (", stale=true" if stale else "")
