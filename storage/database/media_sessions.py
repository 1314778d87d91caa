"""GB/T 28181 media sessions: how a worker and the signalling service agree on a channel's video
through the index (the worker offers, the service INVITEs the device, the answer comes back).

A session's `state` goes: `wanted` (the worker's offer) -> `inviting` (the INVITE sent) ->
`playing` (the device's answer is here) or `failed` (why is in `error`); the device's BYE or
going offline makes it `ended`; the worker's release makes it `released`, and the service then
says BYE and forgets it. Each offer has a new `generation`: an answer to an older offer is
never taken for the newer one."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import JSON, Index, Integer, String, select, update
from sqlalchemy.orm import Mapped, mapped_column

from ingest.gb28181 import MediaAnswer, MediaOffer, MediaRefusedError
from storage.database.engine import Base, Database, UTCDateTime, utcnow

SessionState = Literal["wanted", "inviting", "playing", "failed", "ended", "released"]


class GbMediaRow(Base):
    """One camera's media session with its device. `dialog` is what a BYE needs (Call-ID,
    tags, the device's URI, the next CSeq), kept here so that a restarted signalling service
    can still end a session it began."""

    __tablename__ = "gb_media"

    camera_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    generation: Mapped[int] = mapped_column(Integer, default=1)
    device_id: Mapped[str] = mapped_column(String(20))
    channel_id: Mapped[str] = mapped_column(String(20))
    worker_id: Mapped[str] = mapped_column(String(64))
    offer_host: Mapped[str] = mapped_column(String(64))
    offer_port: Mapped[int] = mapped_column(Integer)
    transport: Mapped[str] = mapped_column(String(16))
    state: Mapped[str] = mapped_column(String(16))
    ssrc: Mapped[str] = mapped_column(String(10), default="")
    answer_host: Mapped[str] = mapped_column(String(64), default="")
    answer_port: Mapped[int] = mapped_column(Integer, default=0)
    device_host: Mapped[str] = mapped_column(String(64), default="")
    call_id: Mapped[str] = mapped_column(String(128), default="")
    dialog: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    error: Mapped[str] = mapped_column(String(256), default="")
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)

    __table_args__ = (
        Index("ix_gb_media_state", "state"),
        Index("ix_gb_media_call_id", "call_id"),
    )


@dataclass(frozen=True, slots=True)
class DeviceAnswer:
    """What the device's 200 OK said: where its video comes from, and with which SSRC."""

    host: str
    port: int
    ssrc: str
    device_host: str  # where it registered from: media may come from there behind a NAT


class GbMediaSessions:
    """The sessions table, for the workers (`want`, `answer`, `release`) and the signalling
    service (the rest).

    Example:
        >>> sessions = GbMediaSessions(Database.connect("sqlite://"))  # doctest: +SKIP
        >>> sessions.want("gate", "w1", offer)  # doctest: +SKIP
        >>> [row.camera_id for row in sessions.pending()]  # doctest: +SKIP
        ['gate']
    """

    def __init__(self, database: Database) -> None:
        self.database = database

    # -- the worker's side -----------------------------------------------------------------

    def want(self, camera_id: str, worker_id: str, offer: MediaOffer) -> None:
        """Offer to receive a channel (a new generation; an open dialog stays, to be ended)."""
        with self.database.sessions.begin() as session:
            row = session.get(GbMediaRow, camera_id)
            if row is None:
                row = GbMediaRow(camera_id=camera_id, generation=0)
                session.add(row)
            row.generation += 1
            row.device_id, row.channel_id = offer.device_id, offer.channel_id
            row.worker_id = worker_id
            row.offer_host, row.offer_port, row.transport = offer.host, offer.port, offer.transport
            row.state, row.error = "wanted", ""
            row.answer_host, row.answer_port, row.device_host = "", 0, ""

    def answer(self, camera_id: str) -> MediaAnswer | None:
        with self.database.sessions() as session:
            row = session.get(GbMediaRow, camera_id)
        if row is None or row.state in ("released", "ended", "failed"):
            raise MediaRefusedError(
                row.error if row is not None and row.error else "the session ended"
            )
        if row.state != "playing":
            return None
        # The registered address first: TCP-active connects there, never to an address the
        # device's SDP names (which could be anything, an internal service included).
        hosts = tuple(dict.fromkeys(h for h in (row.device_host, row.answer_host) if h))
        return MediaAnswer(hosts, row.answer_port, int(row.ssrc) if row.ssrc.isdigit() else None)

    def release(self, camera_id: str, worker_id: str) -> None:
        with self.database.sessions.begin() as session:
            session.execute(
                update(GbMediaRow)
                .where(GbMediaRow.camera_id == camera_id, GbMediaRow.worker_id == worker_id)
                .values(state="released")
                .execution_options(synchronize_session=False)
            )

    # -- the signalling service's side -----------------------------------------------------

    def pending(self) -> list[GbMediaRow]:
        """The sessions the service has to act on: offers to INVITE, releases to BYE."""
        with self.database.sessions() as session:
            statement = select(GbMediaRow).where(GbMediaRow.state.in_(("wanted", "released")))
            return list(session.scalars(statement))

    def _set(self, camera_id: str, generation: int | None, **values: Any) -> bool:
        statement = update(GbMediaRow).where(GbMediaRow.camera_id == camera_id)
        if generation is not None:
            statement = statement.where(GbMediaRow.generation == generation)
        with self.database.sessions.begin() as session:
            done = session.execute(
                statement.values(**values).execution_options(synchronize_session=False)
            )
        return bool(done.rowcount)  # type: ignore[attr-defined]

    def inviting(self, camera_id: str, generation: int, ssrc: str, dialog: dict[str, Any]) -> bool:
        return self._set(camera_id, generation, state="inviting", ssrc=ssrc,
                         call_id=dialog["call_id"], dialog=dialog)  # fmt: skip

    def playing(self, camera_id: str, generation: int, answer: DeviceAnswer,
                dialog: dict[str, Any]) -> bool:  # fmt: skip
        return self._set(
            camera_id, generation, state="playing", answer_host=answer.host,
            answer_port=answer.port, ssrc=answer.ssrc, device_host=answer.device_host,
            dialog=dialog,
        )  # fmt: skip

    def failed(self, camera_id: str, generation: int | None, reason: str) -> bool:
        return self._set(camera_id, generation, state="failed", error=reason[:256], dialog=None,
                         call_id="")  # fmt: skip

    def ended(self, call_id: str, reason: str) -> bool:
        """The device ended the session of `call_id` (its BYE)."""
        with self.database.sessions.begin() as session:
            done = session.execute(
                update(GbMediaRow)
                .where(GbMediaRow.call_id == call_id)
                .values(state="ended", error=reason[:256], dialog=None, call_id="")
                .execution_options(synchronize_session=False)
            )
        return bool(done.rowcount)  # type: ignore[attr-defined]

    def devices_offline(self, device_ids: Sequence[str]) -> None:
        """The sessions of devices gone offline end: their dialogs are gone with them."""
        if not device_ids:
            return
        with self.database.sessions.begin() as session:
            session.execute(
                update(GbMediaRow)
                .where(GbMediaRow.device_id.in_(device_ids),
                       GbMediaRow.state.in_(("inviting", "playing")))
                .values(state="ended", error="the device went offline", dialog=None, call_id="")
                .execution_options(synchronize_session=False)
            )  # fmt: skip

    def forget(self, camera_id: str) -> None:
        """A released session whose BYE was sent (unless the camera was wanted again)."""
        with self.database.sessions.begin() as session:
            row = session.get(GbMediaRow, camera_id)
            if row is not None and row.state == "released":
                session.delete(row)


class IndexMediaBroker:
    """A worker's `MediaBroker`: its offers and releases go through the index."""

    def __init__(self, sessions: GbMediaSessions, worker_id: str) -> None:
        self.sessions = sessions
        self.worker_id = worker_id

    def request(self, camera_id: str, offer: MediaOffer) -> None:
        self.sessions.want(camera_id, self.worker_id, offer)

    def answer(self, camera_id: str) -> MediaAnswer | None:
        return self.sessions.answer(camera_id)

    def release(self, camera_id: str) -> None:
        self.sessions.release(camera_id, self.worker_id)
