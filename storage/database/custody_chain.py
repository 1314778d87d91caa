"""The custody log's hash chain, and the offline check of an evidence bundle.

Each custody entry carries the SHA-256 of the entry before it (the whole log's chain) and of
the event's entry before it (the event's chain), and its own SHA-256 over both and its fields.
Editing an entry changes its hash; deleting or reordering entries breaks the links of those
after them; cutting the end off and rewriting the head is caught by the anchors the platform
writes to object storage under object lock.

This file uses the standard library only: an evidence bundle carries it as `verify.py`, so
that whoever receives the bundle (a court, another force) can run

    python3 verify.py BUNDLE_DIRECTORY

on any machine with Python 3.9 or later, without our software, and see whether the files are
those the manifest names and whether the custody entries are intact and linked.
"""

from __future__ import annotations

import hashlib
import json
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

GENESIS = "0" * 64  # the link of the first entry (of the log, and of each event)
ENTRY_FIELDS = ("seq", "event_id", "object_key", "action", "actor", "client", "detail", "at")


def entry_sha256(entry: dict[str, Any]) -> str:
    """The SHA-256 of an entry: its fields (`at` as ISO 8601 UTC with microseconds) and its two
    links, as canonical JSON.

    Example:
        >>> entry = {"seq": 1, "event_id": "e1", "object_key": None, "action": "hold",
        ...          "actor": "desk 3", "client": None, "detail": "case 88",
        ...          "at": "2026-12-03T09:00:00.000000+00:00",
        ...          "previous_sha256": GENESIS, "event_previous_sha256": GENESIS}
        >>> entry_sha256(entry)[:16]
        '6e09f6de57ab73e5'
    """
    content = {name: entry[name] for name in ENTRY_FIELDS}
    content["previous"] = entry["previous_sha256"]
    content["event_previous"] = entry["event_previous_sha256"]
    canonical = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def chain_problems(entries: Iterable[dict[str, Any]], whole_log: bool) -> list[str]:
    """What is wrong with `entries` (oldest first): an entry whose hash is not that of its
    fields, or whose links do not name the entry before it. `whole_log`: the entries are the
    whole log from its start, numbered 1, 2, 3, ... (else the entries of one event, which link
    to each other by `event_previous_sha256` and to entries not given by `previous_sha256`).
    Read once, in order: a log of millions of entries is never held whole."""
    problems = []
    previous = GENESIS
    gap_seen = False
    for place, entry in enumerate(entries, start=1):
        seq = entry["seq"]
        if entry_sha256(entry) != entry["sha256"]:
            problems.append(f"entry {seq}: its content does not match its hash (edited)")
        link = "previous_sha256" if whole_log else "event_previous_sha256"
        if entry[link] != previous:
            problems.append(f"entry {seq}: it does not follow the entry before it")
        if whole_log and seq != place and not gap_seen:
            problems.append(f"entry {seq}: entries before it are missing")
            gap_seen = True
        previous = entry["sha256"]
    return problems


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1024 * 1024), b""):
            digest.update(block)
    return digest.hexdigest()


def bundle_problems(directory: Path) -> list[str]:
    """Everything wrong with an unpacked evidence bundle: its files against the manifest's
    SHA-256 and sizes, and the event's custody entries against their hashes and links."""
    manifest = json.loads((directory / "manifest.json").read_text(encoding="utf-8"))
    problems = []
    for item in manifest["files"]:
        path = directory / item["name"]
        if not path.is_file():
            problems.append(f"{item['name']}: missing")
        elif path.stat().st_size != item["size"] or file_sha256(path) != item["sha256"]:
            problems.append(f"{item['name']}: not the file the manifest names (changed)")
    problems += chain_problems(manifest["custody"], whole_log=False)
    return problems


def main(arguments: list[str]) -> int:
    if len(arguments) != 1:
        print("usage: python3 verify.py BUNDLE_DIRECTORY", file=sys.stderr)
        return 2
    problems = bundle_problems(Path(arguments[0]))
    for problem in problems:
        print(f"FAILED: {problem}")
    if not problems:
        print("OK: every file matches the manifest and the custody entries are intact")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
