"""Shop alarm panels: the account and zone -> camera map of a site, its arming (schedule or
the panel's own open/close reports), and the alarm clips it asks the workers for."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import JSON, Boolean, Float, Index, Integer, String, select, update
from sqlalchemy.orm import Mapped, mapped_column

from common.schedule import Period
from common.types import Event, EventSink
from storage.database.accounts import SiteRow
from storage.database.engine import Base, UTCDateTime, utcnow
from storage.database.index import EventIndex, event_of_row

# SIA Contact ID event codes a shop panel sends; the first digit is the class.
CONTACT_ID = {
    100: "medical",
    110: "fire",
    120: "panic",
    121: "duress",
    122: "silent panic",
    123: "audible panic",
    130: "burglary",
    131: "perimeter",
    132: "interior",
    133: "24 hour",
    134: "entry/exit",
    135: "day/night",
    137: "tamper",
    140: "general alarm",
    150: "24 hour aux",
    300: "system trouble",
    301: "AC loss",
    302: "low battery",
    380: "sensor trouble",
    400: "open/close",
    401: "open/close by user",
    403: "automatic open/close",
    441: "armed stay",
    570: "bypass",
}
OPEN_CLOSE = range(400, 410)  # qualifier 1: opened (disarmed); 3: closed (armed)


def contact_id_name(code: int) -> str:
    return CONTACT_ID.get(code, f"code {code}")


def contact_id_severity(code: int) -> str:
    """Alarms (1xx) are high, troubles (3xx) medium, the rest low."""
    return "high" if 100 <= code < 200 else "medium" if 300 <= code < 400 else "low"


class AlarmPanelRow(Base):
    """A site's alarm panel. `zones` maps a panel zone to the cameras that see it; events of
    `gated_types` count only while the site is armed: by `schedule` (in the site's time
    zone: periods as an after-hours rule's), unless the panel or an operator set `armed`
    (None: the schedule decides)."""

    __tablename__ = "alarm_panels"

    site: Mapped[str] = mapped_column(String(64), primary_key=True)
    account: Mapped[str] = mapped_column(String(32), index=True)  # one per site a key sees
    zones: Mapped[dict[str, list[str]]] = mapped_column(JSON, default=dict)
    pre_alarm_s: Mapped[float] = mapped_column(Float, default=30.0)
    post_alarm_s: Mapped[float] = mapped_column(Float, default=10.0)
    gated_types: Mapped[list[str]] = mapped_column(JSON, default=list)
    schedule: Mapped[list[dict[str, object]]] = mapped_column(JSON, default=list)
    armed: Mapped[bool | None] = mapped_column(Boolean, nullable=True)
    armed_by: Mapped[str | None] = mapped_column(String(128), nullable=True)
    armed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class AlarmClipRow(Base):
    """A clip an alarm asks of the worker that runs `camera_id`: `pre_s` before `alarm_at`
    to `post_s` after it, for the already indexed event `event_id`."""

    __tablename__ = "alarm_clips"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    event_id: Mapped[str] = mapped_column(String(32))
    site: Mapped[str] = mapped_column(String(64))
    camera_id: Mapped[str] = mapped_column(String(64))
    alarm_at: Mapped[datetime] = mapped_column(UTCDateTime())
    pre_s: Mapped[float] = mapped_column(Float)
    post_s: Mapped[float] = mapped_column(Float)
    state: Mapped[str] = mapped_column(String(16), default="pending")  # then "taken"
    taken_by: Mapped[str | None] = mapped_column(String(64), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    __table_args__ = (Index("ix_alarm_clips_pending", "state", "camera_id"),)


@dataclass(frozen=True, slots=True)
class Arming:
    """Whether a site's gated event types count now (what a worker keeps per site)."""

    gated_types: frozenset[str]
    armed: bool

    def admits(self, event_type: str) -> bool:
        return self.armed or event_type not in self.gated_types


class AlarmPanels:
    """Panels, their arming, and alarm clip requests.

    Example:
        >>> panels = AlarmPanels(index)  # doctest: +SKIP
        >>> panels.arming(utcnow())["shop-7"].admits("zone_intrusion")  # doctest: +SKIP
        False
    """

    def __init__(self, index: EventIndex) -> None:
        self.index = index

    def get(self, site: str) -> AlarmPanelRow | None:
        with self.index.sessions() as session:
            return session.get(AlarmPanelRow, site)

    def by_account(self, account: str) -> list[AlarmPanelRow]:
        """The panels reporting as `account`: one per site, but sites that no key sees both
        of may share an account (a key cannot learn of another site's by trying one)."""
        with self.index.sessions() as session:
            statement = select(AlarmPanelRow).where(AlarmPanelRow.account == account)
            return list(session.scalars(statement))

    def put(self, row: AlarmPanelRow) -> None:
        with self.index.sessions.begin() as session:
            session.merge(row)

    def set_armed(self, site: str, armed: bool | None, by: str) -> bool:
        """Arm, disarm, or (None) hand the site back to its schedule; False if no panel."""
        with self.index.sessions.begin() as session:
            changed = session.execute(
                update(AlarmPanelRow)
                .where(AlarmPanelRow.site == site)
                .values(armed=armed, armed_by=by, armed_at=utcnow())
            )
            return bool(changed.rowcount)  # type: ignore[attr-defined]

    def arming(self, now: datetime) -> dict[str, Arming]:
        """Every panel's site and whether it is armed at `now`."""
        with self.index.sessions() as session:
            rows = session.execute(
                select(AlarmPanelRow, SiteRow.timezone).outerjoin(
                    SiteRow, SiteRow.id == AlarmPanelRow.site
                )
            ).all()
        result = {}
        for panel, timezone in rows:
            armed = panel.armed
            if armed is None:
                local = now.astimezone(ZoneInfo(timezone or "UTC")).replace(tzinfo=None)
                periods = [Period.model_validate(period) for period in panel.schedule]
                armed = any(period.contains(local) for period in periods)
            result[panel.site] = Arming(frozenset(panel.gated_types), armed)
        return result

    def ask_clips(self, requests: Sequence[AlarmClipRow]) -> None:
        with self.index.sessions.begin() as session:
            session.add_all(requests)

    def take_clips(self, camera_ids: Iterable[str], worker_id: str) -> list[AlarmClipRow]:
        """The pending clip requests of these cameras, each taken by one worker."""
        cameras = list(camera_ids)
        if not cameras:
            return []
        with self.index.sessions() as session:
            pending = session.scalars(
                select(AlarmClipRow).where(
                    AlarmClipRow.state == "pending", AlarmClipRow.camera_id.in_(cameras)
                )
            ).all()
        taken = []
        for request in pending:
            with self.index.sessions.begin() as session:
                won = session.execute(
                    update(AlarmClipRow)
                    .where(AlarmClipRow.id == request.id, AlarmClipRow.state == "pending")
                    .values(state="taken", taken_by=worker_id)
                )
                if won.rowcount:  # type: ignore[attr-defined]
                    taken.append(request)
        return taken


class ArmedSink:
    """Hands events on to `sink`, but not those of a type their site gates while it is
    disarmed (nor the ends of those): intrusion counts only while the shop is armed.

    Example:
        >>> sink = ArmedSink(recorder, lambda: worker.arming)  # doctest: +SKIP
    """

    def __init__(self, sink: EventSink, arming: Callable[[], Mapping[str, Arming]]) -> None:
        self.sink = sink
        self.arming = arming
        self._dropped: set[str] = set()

    def event_started(self, event: Event) -> None:
        site = self.arming().get(event.site)
        if site is not None and not site.admits(event.type):
            self._dropped.add(event.id)
            return
        self.sink.event_started(event)

    def event_ended(self, event: Event) -> None:
        if event.id in self._dropped:
            self._dropped.discard(event.id)
            return
        self.sink.event_ended(event)


def expire_alarm_clips(panels: AlarmPanels, index: EventIndex, waited_s: float) -> list[str]:
    """Alarm clips no worker took within `waited_s` of the alarm (its camera runs nowhere):
    their events are ended with a `clip_error` saying so, rather than waiting for ever.
    Returns those events' ids."""
    before = utcnow() - timedelta(seconds=waited_s)
    with index.sessions.begin() as session:
        stale = session.scalars(
            select(AlarmClipRow).where(
                AlarmClipRow.state == "pending", AlarmClipRow.alarm_at < before
            )
        ).all()
        for request in stale:
            request.state = "expired"
    for request in stale:
        row = index.get_event(request.event_id)
        if row is not None:
            note = f"no worker ran camera {request.camera_id} to cut the alarm clip"
            index.end_event(event_of_row(row), request.alarm_at, clip_error=note)
    return [request.event_id for request in stale]
