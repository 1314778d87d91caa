"""The processes' logs: one line a record whatever it holds, as text or as JSON.

A name stored before names were checked, a camera's error text or an exception's message may
hold line breaks, terminal escapes or marks that reorder text; the log must still show one
record per line, none of them forged, and JSON that gives back exactly what was logged."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

HOSTILE_NAME = "ok\r\nX-Injected: 1\x00\x1b[31m"
HOSTILE_FILE = "clip\u202e4pm.exe"
# What a process logs: the webhook dispatcher's dead letter and an error with its traceback.
LOGGING = f"""
import logging, sys
from xueliang.logs import setup_logging
setup_logging("api", sys.argv[1])
log = logging.getLogger("api.webhooks")
log.warning("webhook delivery %d to %s dead after %d attempts: %s", 7, {HOSTILE_NAME!r}, 8, "x")
try:
    raise RuntimeError("line one\\nline two")
except RuntimeError:
    log.exception("storing %s failed", {HOSTILE_FILE!r})
"""


def logged(log_format: str) -> list[str]:
    run = subprocess.run(
        [sys.executable, "-c", LOGGING, log_format],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    for character in ("\r", "\x00", "\x1b", "\u202e"):
        assert character not in run.stderr, repr(character)
    return run.stderr.splitlines()


def test_text_logs_keep_each_record_on_one_line_with_its_controls_escaped() -> None:
    lines = logged("text")
    assert len(lines) == 2, lines
    assert not any(line.startswith("X-Injected") for line in lines)
    dead, failed = lines
    assert " WARNING api api.webhooks: webhook delivery 7 to ok\\r\\nX-Injected: 1" in dead
    assert dead.endswith("\\x00\\x1b[31m dead after 8 attempts: x")
    assert "storing clip\\u202e4pm.exe failed\\nTraceback" in failed
    assert failed.endswith("RuntimeError: line one\\nline two")


@pytest.mark.parametrize("record", [0, 1], ids=["dead-letter", "traceback"])
def test_json_logs_give_back_exactly_what_was_logged(record: int) -> None:
    lines = logged("json")
    assert len(lines) == 2, lines
    fields = json.loads(lines[record])
    assert fields["process"] == "api" and fields["logger"] == "api.webhooks"
    if record == 0:
        assert fields["level"] == "WARNING" and "exception" not in fields
        assert fields["message"] == (
            f"webhook delivery 7 to {HOSTILE_NAME} dead after 8 attempts: x"
        )
    else:
        assert fields["level"] == "ERROR"
        assert fields["message"] == f"storing {HOSTILE_FILE} failed"
        assert fields["exception"].endswith("RuntimeError: line one\nline two")
