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


def till_loitering(started_at: float) -> Event:
    """Someone lingering at the till of shop-7, seen by its camera "door"."""
    return person_event(
        started_at, camera_id="door", site="shop-7", type="loitering", zone="till", severity="low"
    )


def panel_alarm(started_at: float) -> Event:
    """The alarm panel of shop-7 reporting zone 3, near its camera "door"."""
    return person_event(
        started_at, camera_id="door", site="shop-7", type="alarm_panel", label="", zone="zone 3"
    )
