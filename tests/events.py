"""Events as tests make them: a person who entered zone "door" of camera "gate" at site "hq",
high severity, seen once at `started_at`; a test names only the fields that matter to it."""

from __future__ import annotations

from typing import Any

from common.types import Event


def person_event(started_at: float = 1.0, **fields: Any) -> Event:
    defaults: dict[str, Any] = {
        "camera_id": "gate",
        "site": "hq",
        "type": "zone_intrusion",
        "label": "person",
        "zone": "door",
        "severity": "high",
        "started_at": started_at,
        "last_seen_at": started_at,
    }
    return Event(**(defaults | fields))
