"""Child processes that never outlive the process that started them."""

from __future__ import annotations

import contextlib
import ctypes
import signal
import subprocess
from collections.abc import Sequence
from typing import Any

PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """In the child: get SIGTERM if the parent dies, even by SIGKILL (Linux)."""
    with contextlib.suppress(OSError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def spawn_owned(command: Sequence[str], **options: Any) -> subprocess.Popen[bytes]:
    """Start `command` in its own process group, bound to this process's life.

    Its own group: a terminal's Ctrl-C reaches only the owner, which then stops its children
    in order (so a worker can flush its events before the S3 server goes away).
    """
    return subprocess.Popen(
        list(command),
        stdin=subprocess.DEVNULL,
        preexec_fn=_die_with_parent,
        process_group=0,
        **options,
    )
