"""Keep camera credentials out of anything a person can read (logs, errors, API answers)."""

from __future__ import annotations

import logging
import re
from urllib.parse import SplitResult, unquote, urlsplit, urlunsplit

_USERINFO = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)[^/@\s]+@")
# Some cameras take credentials as query parameters (?user=admin&password=...).
_SECRET_PARAMETER = re.compile(
    r"(?P<key>[?&;](?:user(?:name)?|pass(?:word)?|pwd|token|key|auth|secret)=)[^&#\s'\"]+",
    re.IGNORECASE,
)


def redact_text(text: str) -> str:
    """Replace the user-info part of every URL in `text` with `***`.

    Example:
        >>> redact_text("cannot open rtsp://admin:hunter2@10.0.0.5/live")
        'cannot open rtsp://***@10.0.0.5/live'
        >>> redact_text("http://cam/snap.cgi?channel=1&user=admin&pwd=hunter2")
        'http://cam/snap.cgi?channel=1&user=***&pwd=***'
    """
    return _SECRET_PARAMETER.sub(r"\g<key>***", _USERINFO.sub(r"\g<scheme>***@", text))


def strip_userinfo(url: str) -> tuple[str, str | None, str | None]:
    """Split `url` into (url without user-info, username, password)."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url, None, None
    netloc = parts.netloc.rpartition("@")[2]  # as written: checking it is not this split's job
    bare = urlunsplit(SplitResult(parts.scheme, netloc, parts.path, parts.query, parts.fragment))
    user = unquote(parts.username) if parts.username is not None else None
    password = unquote(parts.password) if parts.password is not None else None
    return bare, user, password


class RedactingFilter(logging.Filter):
    """A logging filter that removes URL credentials and any registered secret from records."""

    def __init__(self) -> None:
        super().__init__()
        self._secrets: set[str] = set()

    def add_secret(self, secret: str) -> None:
        if secret:
            self._secrets.add(secret)

    def redact(self, text: str) -> str:
        text = redact_text(text)
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        record.msg = self.redact(message)
        record.args = None
        if record.exc_text:
            record.exc_text = self.redact(record.exc_text)
        return True
