"""Process-wide logging with credentials removed from every record."""

from __future__ import annotations

import logging
import sys

from common.redact import RedactingFilter

redactor = RedactingFilter()


def setup_logging(process: str, level: int = logging.INFO) -> None:
    """Log to stderr as `time level process logger: message`, redacted."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        logging.Formatter(f"%(asctime)s %(levelname)s {process} %(name)s: %(message)s")
    )
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
