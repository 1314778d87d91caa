"""Counts FFmpeg's decoder errors per stream reader thread.

FFmpeg conceals most bitstream damage instead of failing a decode call, and only says so in
its log ("error while decoding MB ..."). PyAV forwards FFmpeg's log to Python's `logging`
(logger `libav.*`) from the thread that made the call, so a handler can charge each error
to the reader running in that thread. The messages themselves are not re-logged: they are
frequent on a damaged stream, and FFmpeg's lines may carry URLs.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

import av.logging

_counters: dict[int, Callable[[], None]] = {}
_lock = threading.Lock()
_installed = False


class _DecoderErrorCounter(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        if record.levelno < logging.ERROR:
            return
        count = _counters.get(threading.get_ident())
        if count is not None:
            count()


def count_errors_of_this_thread(count: Callable[[], None]) -> None:
    """Call `count` for each FFmpeg error logged from the calling thread from now on."""
    global _installed
    with _lock:
        if not _installed:
            libav = logging.getLogger("libav")
            libav.addHandler(_DecoderErrorCounter())
            libav.propagate = False
            libav.setLevel(logging.ERROR)
            av.logging.set_level(av.logging.ERROR)
            _installed = True
        _counters[threading.get_ident()] = count


def stop_counting_this_thread() -> None:
    with _lock:
        _counters.pop(threading.get_ident(), None)
