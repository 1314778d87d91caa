"""Process-wide logging: one line per record, credentials removed, control characters escaped.

Whatever a record holds (a webhook's name, a camera's error, a traceback), it is one line of
the log: line breaks and the other control characters are written as escapes, so no text
that reaches a log can start a line of its own or hide what follows it. As text
(`time level process logger: message`) or, with `logs.format: json`, one JSON object a line.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from typing import Literal

from common.config import CONTROL_CHARACTER, StrictModel
from common.redact import RedactingFilter

redactor = RedactingFilter()
LogFormat = Literal["text", "json"]
NAMED_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


class LogsConfig(StrictModel):
    format: LogFormat = "text"


def escape_controls(text: str) -> str:
    r"""`text` with each control character written as an escape (`\n`, `\x1b`, `\u202e`).

    Example:
        >>> print(escape_controls("delivery to ok\r\nX-Injected: 1 dead"))
        delivery to ok\r\nX-Injected: 1 dead
    """
    return CONTROL_CHARACTER.sub(_escaped, text)


def _escaped(found: re.Match[str]) -> str:
    character = found.group()
    code = ord(character)
    return NAMED_ESCAPES.get(character) or (f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")


class TextLines(logging.Formatter):
    """`time level process logger: message`, a traceback on the same line."""

    def __init__(self, process: str) -> None:
        super().__init__(f"%(asctime)s %(levelname)s {process} %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        return escape_controls(super().format(record))


class JsonLines(logging.Formatter):
    """One JSON object a record: time, level, process, logger, message, and the traceback."""

    def __init__(self, process: str) -> None:
        super().__init__()
        self.process = process

    def format(self, record: logging.LogRecord) -> str:
        fields = {
            "time": self.formatTime(record),
            "level": record.levelname,
            "process": self.process,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            fields["exception"] = self.formatException(record.exc_info)
        # JSON escapes the C0 controls itself; the C1 ones and the reordering marks are
        # escaped too, so that a terminal or a viewer shows the record as it was logged.
        line = json.dumps(fields, ensure_ascii=False)
        return CONTROL_CHARACTER.sub(lambda found: f"\\u{ord(found.group()):04x}", line)


def setup_logging(process: str, log_format: LogFormat = "text", level: int = logging.INFO) -> None:
    """Log to stderr, one line a record (see the module), redacted."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonLines(process) if log_format == "json" else TextLines(process))
    handler.addFilter(redactor)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("urllib3", "multipart"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def register_secrets(*secrets: str | None) -> None:
    """Strings that must never appear in a log line (passwords, secret keys)."""
    for secret in secrets:
        if secret:
            redactor.add_secret(secret)
