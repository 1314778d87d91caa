"""Credentials never reach a log line."""

from __future__ import annotations

import logging

import pytest

from common.redact import RedactingFilter, redact_text, strip_userinfo


def test_redacts_userinfo_of_every_url() -> None:
    text = "a rtsp://u:p@h/x and rtmp://admin:pw%21@10.0.0.1:1935/live b"
    assert redact_text(text) == "a rtsp://***@h/x and rtmp://***@10.0.0.1:1935/live b"


def test_strip_userinfo_decodes_and_keeps_the_port() -> None:
    assert strip_userinfo("rtsp://ad%40min:p%3Aw@[::1]:554/s?x=1") == (
        "rtsp://[::1]:554/s?x=1",
        "ad@min",
        "p:w",
    )


def test_filter_redacts_messages_args_and_tracebacks(caplog: pytest.LogCaptureFixture) -> None:
    redactor = RedactingFilter()
    redactor.add_secret("hunter2")
    logger = logging.getLogger("test.redact")
    logger.addFilter(redactor)
    with caplog.at_level(logging.INFO, logger="test.redact"):
        logger.info("open %s", "rtsp://admin:hunter2@cam/live")
        try:
            raise OSError("refused by cam with password hunter2")
        except OSError:
            logger.exception("failed")
    assert "hunter2" not in caplog.text
    assert "rtsp://***@cam/live" in caplog.text
    assert "password ***" in caplog.text
