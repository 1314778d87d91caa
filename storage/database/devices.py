"""GB/T 28181 devices (cameras, NVRs, lower platforms) as the signalling service knows them, and
each site's settings for them."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from sqlalchemy import Boolean, Float, Integer, String, Text, delete, or_, select, update
from sqlalchemy.orm import Mapped, Session, mapped_column
from sqlalchemy.sql.elements import ColumnElement

from storage.database.cameras import CameraRow
from storage.database.engine import Base, Database, UTCDateTime, utcnow
from storage.database.sealing import CredentialSealer

DeviceState = Literal["pending", "approved"]
DEVICE_ID = re.compile(r"^\d{20}$")  # GB/T 28181's: civil code, kind, number
VIDEO_KINDS = ("131", "132")  # an ID's 11th-13th digits: a camera, an IP camera


def is_video_channel(channel_id: str) -> bool:
    """A catalog item that is a camera (not an alarm input, a tree node or a platform).

    Example:
        >>> is_video_channel("34020000001320000001"), is_video_channel("34020000002160000001")
        (True, False)
    """
    return bool(DEVICE_ID.match(channel_id)) and channel_id[10:13] in VIDEO_KINDS


def channel_url(device_id: str, channel_id: str) -> str:
    return f"gb28181://{device_id}/{channel_id}"


def channel_camera_id(device_id: str, channel_id: str) -> str:
    """The camera a channel becomes: unique, as channel IDs are unique only per device."""
    return f"{device_id}-{channel_id}"


class GbDeviceRow(Base):
    """A device that registered (or was announced by an installer before it did). `pending`
    until approved for a site; `password` (sealed) is its own, if it has one."""

    __tablename__ = "gb_devices"

    id: Mapped[str] = mapped_column(String(20), primary_key=True)
    state: Mapped[str] = mapped_column(String(16), default="pending")
    site: Mapped[str | None] = mapped_column(String(64), nullable=True)
    name: Mapped[str] = mapped_column(String(128), default="")
    password: Mapped[str | None] = mapped_column(Text, nullable=True)
    transport: Mapped[str] = mapped_column(String(8), default="UDP")
    host: Mapped[str] = mapped_column(String(64), default="")
    port: Mapped[int] = mapped_column(Integer, default=0)
    user_agent: Mapped[str] = mapped_column(String(128), default="")
    manufacturer: Mapped[str] = mapped_column(String(64), default="")  # its DeviceInfo
    model: Mapped[str] = mapped_column(String(64), default="")
    firmware: Mapped[str] = mapped_column(String(64), default="")
    channel_count: Mapped[int | None] = mapped_column(Integer, nullable=True)
    online: Mapped[bool] = mapped_column(Boolean, default=False)
    offline_reason: Mapped[str] = mapped_column(String(128), default="")
    registered_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    keepalive_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    catalog_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class GbChannelRow(Base):
    """A channel of a device as its catalog describes it: a camera (or an alarm input, or a
    node of its tree: a civil area, a business group, a virtual organisation), its place in the
    device's tree (`parent_id`, `civil_code`, `business_group_id`) and its status."""

    __tablename__ = "gb_channels"

    device_id: Mapped[str] = mapped_column(String(20), primary_key=True)
    id: Mapped[str] = mapped_column(String(20), primary_key=True)
    name: Mapped[str] = mapped_column(String(128), default="")
    manufacturer: Mapped[str] = mapped_column(String(64), default="")
    model: Mapped[str] = mapped_column(String(64), default="")
    civil_code: Mapped[str] = mapped_column(String(20), default="")
    parent_id: Mapped[str] = mapped_column(String(128), default="")
    business_group_id: Mapped[str] = mapped_column(String(20), default="")
    address: Mapped[str] = mapped_column(String(128), default="")
    status: Mapped[str] = mapped_column(String(8), default="")
    parental: Mapped[bool] = mapped_column(Boolean, default=False)
    ptz_type: Mapped[int | None] = mapped_column(Integer, nullable=True)
    longitude: Mapped[float | None] = mapped_column(Float, nullable=True)
    latitude: Mapped[float | None] = mapped_column(Float, nullable=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)


class GbSiteRow(Base):
    """A site's GB/T 28181 settings: the password its devices register with (sealed), and the
    ID prefix of devices approved into it as they first register with that password."""

    __tablename__ = "gb_sites"

    site: Mapped[str] = mapped_column(String(64), primary_key=True)
    password: Mapped[str | None] = mapped_column(Text, nullable=True)
    auto_approve_prefix: Mapped[str] = mapped_column(String(20), default="")


@dataclass(frozen=True, slots=True)
class Candidate:
    """A password a device may register with, and what a match means: the site it puts the
    device in (None: no site, the device stays as it is)."""

    password: str
    site: str | None


@dataclass(frozen=True, slots=True)
class Registration:
    """What a device's REGISTER told us."""

    device_id: str
    transport: str
    host: str
    port: int
    user_agent: str
    expires_at: datetime


class GbDevices:
    """The devices table and the sites' settings, credentials sealed with `sealer`.

    Example:
        >>> devices = GbDevices(Database.connect("sqlite://"), sealer)  # doctest: +SKIP
        >>> devices.candidates("34020000001320000001", default="12345678")  # doctest: +SKIP
        [Candidate(password='12345678', site=None)]
    """

    def __init__(self, database: Database, sealer: CredentialSealer) -> None:
        self.database = database
        self.sealer = sealer

    def get(self, device_id: str) -> GbDeviceRow | None:
        with self.database.sessions() as session:
            return session.get(GbDeviceRow, device_id)

    def all(self, sites: Sequence[str] | None) -> list[GbDeviceRow]:
        """The devices of `sites` (None: every device, pending ones too), by ID."""
        with self.database.sessions() as session:
            statement = select(GbDeviceRow).order_by(GbDeviceRow.id)
            if sites is not None:
                statement = statement.where(GbDeviceRow.site.in_(sites))
            return list(session.scalars(statement))

    def candidates(self, device_id: str, default: str | None) -> list[Candidate]:
        """The passwords `device_id` may register with: its own if it has one; else its site's
        if it has one; else (a pending or new device) the passwords of the sites whose
        auto-approval prefix it has (approving it into that site), then the platform's
        default."""
        with self.database.sessions() as session:
            device = session.get(GbDeviceRow, device_id)
            sites = {row.site: row for row in session.scalars(select(GbSiteRow))}
        if device is not None and device.password:
            return [Candidate(self.sealer.open(device.password), None)]
        own_site = sites.get(device.site) if device is not None and device.site else None
        if own_site is not None and own_site.password:
            return [Candidate(self.sealer.open(own_site.password), None)]
        found = []
        if device is None or device.state == "pending":
            found = [
                Candidate(self.sealer.open(row.password), row.site)
                for row in sites.values()
                if row.password and row.auto_approve_prefix
                and device_id.startswith(row.auto_approve_prefix)
            ]  # fmt: skip
        return found + ([Candidate(default, None)] if default else [])

    def registered(self, registration: Registration, approve_into: str | None) -> GbDeviceRow:
        """Record a successful REGISTER: the device is online until `expires_at`; a new one is
        pending, unless its password approved it into a site."""
        now = utcnow()
        with self.database.sessions.begin() as session:
            row = session.get(GbDeviceRow, registration.device_id)
            if row is None:
                row = GbDeviceRow(id=registration.device_id, state="pending", created_at=now)
                session.add(row)
            if approve_into is not None and row.state == "pending":
                row.state, row.site = "approved", approve_into
            row.transport, row.host, row.port = (
                registration.transport, registration.host, registration.port,
            )  # fmt: skip
            row.user_agent = registration.user_agent[:128]
            row.online, row.offline_reason = True, ""
            row.registered_at, row.expires_at, row.keepalive_at = (
                now, registration.expires_at, now,
            )  # fmt: skip
        return row

    def unregistered(self, device_id: str) -> None:
        self._offline([device_id], "unregistered")

    def kept_alive(self, device_id: str, host: str) -> bool:
        """A keepalive from the device at `host`: online again. False if it is not registered
        now, or registered from elsewhere (a keepalive is not authenticated)."""
        now = utcnow()
        with self.database.sessions.begin() as session:
            changed = session.execute(
                update(GbDeviceRow)
                .where(
                    GbDeviceRow.id == device_id,
                    GbDeviceRow.host == host,
                    GbDeviceRow.expires_at > now,
                )
                .values(keepalive_at=now, online=True, offline_reason="")
                .execution_options(synchronize_session=False)
            )
        return bool(changed.rowcount)  # type: ignore[attr-defined]

    def lapse(self, keepalive_before: datetime, now: datetime) -> list[str]:
        """Mark offline the devices whose registration expired or that missed their keepalives
        (none since `keepalive_before`). Returns their IDs."""
        expired = GbDeviceRow.expires_at <= now
        silent = or_(
            GbDeviceRow.keepalive_at.is_(None), GbDeviceRow.keepalive_at < keepalive_before
        )
        with self.database.sessions() as session:
            ids = select(GbDeviceRow.id).where(GbDeviceRow.online)
            ended = list(session.scalars(ids.where(expired)))
            quiet = list(session.scalars(ids.where(~expired, silent)))
        self._offline(ended, "registration expired")
        self._offline(quiet, "keepalives missed")
        return ended + quiet

    def _offline(self, device_ids: list[str], reason: str) -> None:
        if not device_ids:
            return
        with self.database.sessions.begin() as session:
            session.execute(
                update(GbDeviceRow)
                .where(GbDeviceRow.id.in_(device_ids))
                .values(online=False, offline_reason=reason)
                .execution_options(synchronize_session=False)
            )

    def approve(
        self, device_id: str, site: str, name: str = "", password: str | None = None
    ) -> GbDeviceRow:
        """Put a device in a site (made, if it never registered), named `name` if given, with
        its own password if given."""
        with self.database.sessions.begin() as session:
            row = session.get(GbDeviceRow, device_id)
            if row is None:
                row = GbDeviceRow(id=device_id, created_at=utcnow())
                session.add(row)
            row.state, row.site = "approved", site
            row.name = name or row.name
            if password is not None:
                row.password = self.sealer.seal_or_none(password or None)
            sync_channel_cameras(session, row)
        return row

    def delete(self, device_id: str) -> bool:
        """Forget a device and its channels."""
        with self.database.sessions.begin() as session:
            row = session.get(GbDeviceRow, device_id)
            if row is not None:
                session.delete(row)
            session.execute(delete(GbChannelRow).where(GbChannelRow.device_id == device_id))
            session.execute(delete(CameraRow).where(of_device(device_id)))
            return row is not None

    def needing_catalog(self, older_than: datetime) -> list[GbDeviceRow]:
        """Approved devices online whose last whole catalog is older than `older_than`."""
        with self.database.sessions() as session:
            statement = select(GbDeviceRow).where(
                GbDeviceRow.state == "approved",
                GbDeviceRow.online,
                (GbDeviceRow.catalog_at.is_(None)) | (GbDeviceRow.catalog_at < older_than),
            )
            return list(session.scalars(statement))

    def catalog(self, device_id: str, channels: Sequence[GbChannelRow]) -> None:
        """A device's whole catalog: its channels are these now (others are gone)."""
        with self.database.sessions.begin() as session:
            session.execute(delete(GbChannelRow).where(GbChannelRow.device_id == device_id))
            session.add_all(channels)
            device = session.get(GbDeviceRow, device_id)
            if device is not None:
                device.catalog_at = utcnow()
                session.flush()
                sync_channel_cameras(session, device)

    def described(
        self, device_id: str, manufacturer: str, model: str, firmware: str, channels: int | None
    ) -> None:
        """What the device's DeviceInfo answer says of it."""
        values = {"manufacturer": manufacturer, "model": model, "firmware": firmware,
                  "channel_count": channels}  # fmt: skip
        with self.database.sessions.begin() as session:
            session.execute(
                update(GbDeviceRow)
                .where(GbDeviceRow.id == device_id)
                .values(**values)
                .execution_options(synchronize_session=False)
            )

    def channels(self, device_id: str) -> list[GbChannelRow]:
        with self.database.sessions() as session:
            statement = select(GbChannelRow).where(GbChannelRow.device_id == device_id)
            return list(session.scalars(statement.order_by(GbChannelRow.id)))

    def site_settings(self, site: str) -> GbSiteRow | None:
        with self.database.sessions() as session:
            return session.get(GbSiteRow, site)

    def put_site_settings(self, site: str, password: str | None, prefix: str) -> None:
        """A site's password (None: keep it, "": clear it) and auto-approval prefix."""
        with self.database.sessions.begin() as session:
            row = session.get(GbSiteRow, site) or GbSiteRow(site=site)
            session.add(row)
            if password is not None:
                row.password = self.sealer.seal_or_none(password or None)
            row.auto_approve_prefix = prefix


def of_device(device_id: str) -> ColumnElement[bool]:
    """The cameras of a device's channels (made from its catalog, or added by hand)."""
    return CameraRow.url.startswith(f"gb28181://{device_id}/", autoescape=True)


def sync_channel_cameras(session: Session, device: GbDeviceRow) -> None:
    """Each video channel of an approved device is a camera of the device's site: one made,
    disabled (an installer enables it, with its zones or recording), the first time the
    channel is seen; every camera of the device follows it into its site."""
    if device.state != "approved" or device.site is None:
        return
    session.execute(
        update(CameraRow)
        .where(of_device(device.id), CameraRow.site != device.site)
        .values(site=device.site)
        .execution_options(synchronize_session=False)
    )
    have = set(session.scalars(select(CameraRow.id).where(of_device(device.id))))
    channels = session.scalars(select(GbChannelRow).where(GbChannelRow.device_id == device.id))
    for channel in channels:
        camera_id = channel_camera_id(device.id, channel.id)
        if is_video_channel(channel.id) and camera_id not in have:
            session.add(
                CameraRow(id=camera_id, site=device.site, name=channel.name or channel.id,
                          url=channel_url(device.id, channel.id), enabled=False, config={})
            )  # fmt: skip
