"""The one check of a URL that a config or a request gives us (cameras, probes, webhooks).

Its errors say what is wrong and never repeat the URL: it may hold a password."""

from __future__ import annotations

import re
from collections.abc import Collection
from urllib.parse import urlsplit

# A '%' that does not start an escape: the URL means something else to every other parser.
BAD_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")


def check_url(url: str, schemes: Collection[str]) -> str:
    """`url` if it is well formed: one of `schemes`, a host (but for file:), a port from 1 to
    65535 if any, every '%' an escape of two hex digits, and no '@' after the host; else a
    ValueError saying which.

    Example:
        >>> check_url("rtsp://10.0.0.5:554/live%20main", ["rtsp"])
        'rtsp://10.0.0.5:554/live%20main'
        >>> check_url("rtsp://10.0.0.5:99999/live", ["rtsp"])
        Traceback (most recent call last):
        ValueError: the URL's port is not a number from 1 to 65535
    """
    try:
        parts = urlsplit(url)
    except ValueError:  # the one thing splitting refuses: an unclosed '[' of an IPv6 host
        raise ValueError("the URL's host is not a valid IPv6 address") from None
    scheme = parts.scheme.lower()
    if scheme not in schemes:
        raise ValueError(f"unsupported URL scheme {scheme!r}; expected one of {', '.join(schemes)}")
    if scheme != "file" and not parts.hostname:
        raise ValueError("URL has no host")
    if scheme != "file" and "@" in parts.path + parts.query + parts.fragment:
        # Most likely a password with an unencoded '/', '?' or '#': it would stay in the URL.
        raise ValueError(
            "URL has '@' after its host: percent-encode special characters of the user name "
            "and password, or give them as username and password"
        )
    try:
        port_ok = parts.port != 0
    except ValueError:  # out of range, or not a number
        port_ok = False
    if not port_ok:
        raise ValueError("the URL's port is not a number from 1 to 65535")
    if BAD_ESCAPE.search(url):
        raise ValueError("the URL has a '%' that is not followed by two hex digits (write %25)")
    return url


DEFAULT_PORTS = {"rtsp": 554, "rtsps": 322, "rtmp": 1935, "http": 80, "https": 443}


def host_and_port(url: str) -> tuple[str, int]:
    """Where a network URL connects: its host and its port, or its scheme's default.

    Example:
        >>> host_and_port("rtsp://admin:pw@cam-7.local/live"), host_and_port("https://[::1]:8443/")
        (('cam-7.local', 554), ('::1', 8443))
    """
    parts = urlsplit(url)
    return parts.hostname or "", parts.port or DEFAULT_PORTS[parts.scheme.lower()]
