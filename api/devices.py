"""GB/T 28181 devices over the API: the devices of the key's sites, approving a pending one into
a site, and each site's settings for its devices (password, auto-approval prefix)."""

# No `from __future__ import annotations`: FastAPI must see the routes' Annotated[..., Depends]
# metadata, which names dependencies local to `routes`, at definition time.

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException
from pydantic import BaseModel, Field, SecretStr, field_validator

from api.context import ApiContext
from api.errors import ERROR_RESPONSES
from api.models import In, SiteIn
from storage.database.accounts import Principal
from storage.database.devices import DEVICE_ID, GbChannelRow, GbDeviceRow, GbDevices


class DeviceOut(BaseModel):
    """A device as the signalling service knows it; never its password."""

    id: str
    state: Literal["pending", "approved"]
    site: str | None
    name: str
    online: bool
    offline_reason: str
    transport: str
    host: str
    port: int
    user_agent: str
    manufacturer: str
    model: str
    firmware: str
    channel_count: int | None
    registered_at: datetime | None
    expires_at: datetime | None
    keepalive_at: datetime | None
    has_password: bool

    @classmethod
    def of(cls, row: GbDeviceRow) -> "DeviceOut":
        public = {name: getattr(row, name) for name in cls.model_fields if hasattr(row, name)}
        return cls(**public, has_password=row.password is not None)


class ChannelOut(BaseModel):
    """A channel of a device's catalog, and its place in the device's tree."""

    id: str
    name: str
    manufacturer: str
    model: str
    civil_code: str
    parent_id: str
    business_group_id: str
    address: str
    status: str
    parental: bool
    ptz_type: int | None
    longitude: float | None
    latitude: float | None

    @classmethod
    def of(cls, row: GbChannelRow) -> "ChannelOut":
        return cls(**{name: getattr(row, name) for name in cls.model_fields})


class ApproveIn(In):
    site: str
    name: str = Field("", max_length=128)
    password: SecretStr | None = Field(
        None, max_length=64, description="its own password; none: its site's or the default"
    )

    @field_validator("site")
    @classmethod
    def _site_id(cls, site: str) -> str:
        return SiteIn.check_id(site)


class GbSiteIn(In):
    password: SecretStr | None = Field(
        None, max_length=64, description="its devices' password; left out: kept, empty: cleared"
    )
    auto_approve_prefix: str = Field(
        "", pattern=r"^\d{0,20}$", description="devices whose ID starts so are approved into the "
        "site as they first register with its password; empty: none",
    )  # fmt: skip


class GbSiteOut(BaseModel):
    site: str
    has_password: bool
    auto_approve_prefix: str


def routes(ctx: ApiContext) -> APIRouter:
    router = APIRouter(prefix="/api", tags=["gb28181"], responses=ERROR_RESPONSES)
    keepers = ctx.auth.allow("admin", "operator", "installer")
    installers = ctx.auth.allow("admin", "installer")
    devices = GbDevices(ctx.index, ctx.sealer)

    def device(who: Principal, device_id: str) -> GbDeviceRow:
        """A device of the key's sites, or a pending one (whose ID the installer knows: it is
        on the device); else the same 404."""
        row = devices.get(device_id)
        if row is None or not (row.state == "pending" or (row.site and who.sees(row.site))):
            raise HTTPException(404, f"no device {device_id}")
        return row

    @router.get("/gb28181/devices")
    def list_devices(who: Annotated[Principal, keepers]) -> list[DeviceOut]:
        """The devices of the key's sites; keys of every site see the pending ones too."""
        return [DeviceOut.of(row) for row in devices.all(who.sorted_sites)]

    @router.get("/gb28181/devices/{device_id}")
    def get_device(who: Annotated[Principal, keepers], device_id: str) -> DeviceOut:
        return DeviceOut.of(device(who, device_id))

    @router.get("/gb28181/devices/{device_id}/channels")
    def channels(who: Annotated[Principal, keepers], device_id: str) -> list[ChannelOut]:
        """The device's channels as its last whole catalog listed them (asked for as it
        registers approved, and daily)."""
        device(who, device_id)
        return [ChannelOut.of(row) for row in devices.channels(device_id)]

    @router.post("/gb28181/devices/{device_id}/approve")
    def approve(
        who: Annotated[Principal, installers], device_id: str, body: ApproveIn
    ) -> DeviceOut:
        """Put a pending device (or one not registered yet: it is expected) in one of the
        key's sites, with its own password if given."""
        if not DEVICE_ID.match(device_id):
            raise HTTPException(422, "a device ID is 20 digits")
        site = ctx.site(who, body.site).id
        if devices.get(device_id) is not None:
            device(who, device_id)  # pending, or already in one of the key's sites
        password = body.password.get_secret_value() if body.password is not None else None
        return DeviceOut.of(devices.approve(device_id, site, body.name, password))

    @router.delete("/gb28181/devices/{device_id}", status_code=204)
    def delete_device(who: Annotated[Principal, installers], device_id: str) -> None:
        """Forget a device: it is pending again when it next registers."""
        row = device(who, device_id)
        if row.state == "pending" and who.sites is not None:
            raise HTTPException(404, f"no device {device_id}")  # pending: admins' to remove
        devices.delete(device_id)

    @router.get("/sites/{site_id}/gb28181")
    def get_site_settings(who: Annotated[Principal, installers], site_id: str) -> GbSiteOut:
        ctx.site(who, site_id)
        row = devices.site_settings(site_id)
        return GbSiteOut(
            site=site_id,
            has_password=bool(row and row.password),
            auto_approve_prefix=row.auto_approve_prefix if row else "",
        )

    @router.put("/sites/{site_id}/gb28181")
    def put_site_settings(
        who: Annotated[Principal, installers], site_id: str, settings: GbSiteIn
    ) -> GbSiteOut:
        """The password the site's devices register with, and the ID prefix of devices
        approved into the site as they first register with it."""
        ctx.site(who, site_id)
        password = settings.password.get_secret_value() if settings.password is not None else None
        devices.put_site_settings(site_id, password, settings.auto_approve_prefix)
        return get_site_settings(who, site_id)

    return router
