"""Shop alarm intake: panels report alarms (SIA Contact ID codes) and arming; each alarm
becomes an event per camera of the zone, with a clip from before the alarm."""

# No `from __future__ import annotations`: FastAPI must see the routes' Annotated[..., Depends]
# metadata, which names dependencies local to `routes`, at definition time.

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException
from pydantic import BaseModel, Field

from api.context import ApiContext, as_utc
from api.errors import ERROR_RESPONSES
from api.models import EventOut, In
from common.schedule import Period
from common.types import Event
from storage.database.accounts import Principal
from storage.database.alarms import (
    OPEN_CLOSE,
    AlarmClipRow,
    AlarmPanelRow,
    AlarmPanels,
    contact_id_name,
    contact_id_severity,
)
from storage.database.engine import utcnow

ALARM_TYPE = "alarm_panel"


class AlarmPanelIn(In):
    account: str = Field(min_length=1, max_length=32, pattern=r"^[0-9A-Fa-f]+$")
    zones: dict[str, list[str]] = Field(description="panel zone -> the cameras that see it")
    pre_alarm_s: float = Field(30.0, ge=0, le=300)
    post_alarm_s: float = Field(10.0, ge=0, le=300)
    gated_types: list[str] = Field(
        default_factory=lambda: ["zone_intrusion"],
        description="event types that count only while armed",
    )
    schedule: list[Period] = Field(
        default_factory=list, description="when armed, in the site's time zone"
    )


class AlarmPanelOut(AlarmPanelIn):
    site: str
    armed: bool = Field(description="now")
    armed_by: str | None
    manual: bool = Field(description="armed or disarmed by hand (the panel or an operator)")


class ArmIn(In):
    armed: bool | None = Field(description="true, false, or null: back to the schedule")


class AlarmIn(In):
    account: str = Field(min_length=1, max_length=32)
    zone: str = Field(min_length=1, max_length=16, description="the panel's zone (or user)")
    code: int = Field(ge=100, le=999, description="SIA Contact ID event code: 130 burglary...")
    qualifier: Literal[1, 3] = Field(1, description="1 new event / opening, 3 restore / closing")
    time: datetime | None = Field(None, description="when the panel saw it (default: now)")


class AlarmOut(BaseModel):
    kind: Literal["alarm", "arming"]
    armed: bool
    events: list[EventOut]


def routes(ctx: ApiContext) -> APIRouter:
    router = APIRouter(prefix="/api", tags=["alarms"], responses=ERROR_RESPONSES)
    anyone = ctx.auth.allow("admin", "operator", "installer", "shop")
    setters = ctx.auth.allow("admin", "installer")
    panels_side = ctx.auth.allow("admin", "operator", "shop")
    panels = AlarmPanels(ctx.index)

    def panel_out(row: AlarmPanelRow) -> AlarmPanelOut:
        armed = panels.arming(utcnow()).get(row.site)
        return AlarmPanelOut(
            site=row.site,
            account=row.account,
            zones=row.zones,
            pre_alarm_s=row.pre_alarm_s,
            post_alarm_s=row.post_alarm_s,
            gated_types=row.gated_types,
            schedule=[Period.model_validate(period) for period in row.schedule],
            armed=bool(armed and armed.armed),
            armed_by=row.armed_by,
            manual=row.armed is not None,
        )

    def panel(who: Principal, site_id: str) -> AlarmPanelRow:
        ctx.site(who, site_id)
        row = panels.get(site_id)
        if row is None:
            raise HTTPException(404, f"site {site_id} has no alarm panel")
        return row

    @router.get("/sites/{site_id}/alarm-panel")
    def get_panel(who: Annotated[Principal, anyone], site_id: str) -> AlarmPanelOut:
        return panel_out(panel(who, site_id))

    @router.put("/sites/{site_id}/alarm-panel")
    def put_panel(
        who: Annotated[Principal, setters], site_id: str, body: AlarmPanelIn
    ) -> AlarmPanelOut:
        """Connect a site's alarm panel: its account, which cameras see each zone, the
        pre-alarm window, and when the site is armed."""
        ctx.site(who, site_id)
        for cameras in body.zones.values():
            for camera_id in cameras:
                if ctx.camera(who, camera_id).site != site_id:
                    raise HTTPException(422, f"camera {camera_id} is not at site {site_id}")
        # Only the key's own sites may not share an account (its alarms would be ambiguous);
        # whether an account is used where the key cannot see is not its business.
        for other in panels.by_account(body.account):
            if other.site != site_id and who.sees(other.site):
                raise HTTPException(409, f"account {body.account} is the panel of {other.site}")
        existing = panels.get(site_id)
        panels.put(
            AlarmPanelRow(
                site=site_id,
                account=body.account,
                zones=body.zones,
                pre_alarm_s=body.pre_alarm_s,
                post_alarm_s=body.post_alarm_s,
                gated_types=body.gated_types,
                schedule=[period.model_dump(mode="json") for period in body.schedule],
                armed=existing.armed if existing else None,
                armed_by=existing.armed_by if existing else None,
            )
        )
        return panel_out(panel(who, site_id))

    @router.post("/sites/{site_id}/arm")
    def arm(who: Annotated[Principal, panels_side], site_id: str, body: ArmIn) -> AlarmPanelOut:
        """Arm or disarm a site by hand, or hand it back to its schedule (null)."""
        panel(who, site_id)
        panels.set_armed(site_id, body.armed, who.name)
        return panel_out(panel(who, site_id))

    @router.post("/alarms", status_code=202)
    def intake(who: Annotated[Principal, panels_side], alarm: AlarmIn) -> AlarmOut:
        """A panel's report. An alarm becomes an `alarm_panel` event on each camera of its
        zone, whose clip runs from the pre-alarm window before the alarm to the post-alarm
        window after it (cut by the camera's worker from its packet ring); an open/close
        report (codes 400-409) disarms or arms the site."""
        found = [row for row in panels.by_account(alarm.account) if who.sees(row.site)]
        if not found:
            raise HTTPException(404, f"no alarm account {alarm.account}")
        if len(found) > 1:  # saved before its sites were given to one key
            sites = ", ".join(sorted(row.site for row in found))
            raise HTTPException(409, f"account {alarm.account} is the panel of {sites}")
        (row,) = found
        if alarm.code in OPEN_CLOSE:
            panels.set_armed(row.site, alarm.qualifier == 3, f"panel user {alarm.zone}")
            return AlarmOut(kind="arming", armed=alarm.qualifier == 3, events=[])
        cameras = row.zones.get(alarm.zone)
        if not cameras:
            raise HTTPException(422, f"zone {alarm.zone} of account {alarm.account} has no cameras")
        at = as_utc(alarm.time) or utcnow()
        name = contact_id_name(alarm.code)
        qualifier = "restore" if alarm.qualifier == 3 else "alarm"
        events = []
        for camera_id in cameras:
            event = Event(
                camera_id=camera_id,
                site=row.site,
                type=ALARM_TYPE,
                label="",
                zone=f"zone {alarm.zone}",
                severity=contact_id_severity(alarm.code),
                started_at=at.timestamp(),
                last_seen_at=at.timestamp(),
                detail=f"{alarm.code} {name} {qualifier}"[:64],
            )
            ctx.index.add_event(event)
            events.append(event)
        panels.ask_clips(
            [
                AlarmClipRow(
                    event_id=event.id,
                    site=row.site,
                    camera_id=event.camera_id,
                    alarm_at=at,
                    pre_s=row.pre_alarm_s,
                    post_s=row.post_alarm_s,
                )
                for event in events
            ]
        )
        armed = panels.arming(utcnow()).get(row.site)
        rows = [ctx.index.get_event(event.id) for event in events]
        return AlarmOut(
            kind="alarm",
            armed=bool(armed and armed.armed),
            events=[EventOut.of(r) for r in rows if r is not None],
        )

    return router
