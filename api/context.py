"""What every route module needs: the index and the database wing's tables, the store, the
auth dependencies, and lookups that answer another site's object exactly as a missing one."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from fastapi import HTTPException, Request

from api.auth import Auth
from api.config import ApiConfig
from common.egress import Destination, EgressPolicy, EgressRefusedError, parse_networks
from common.urls import host_and_port
from storage.database.accounts import ApiKeys, Principal, SiteRow, Sites
from storage.database.camera_health import Heartbeats
from storage.database.cameras import ApiCameras, CameraConfig
from storage.database.index import EventIndex, EventRow
from storage.database.leases import WorkerStats
from storage.database.sealing import CredentialSealer
from storage.database.workflow import EventWorkflow
from storage.media.evidence import Evidence
from storage.media.objects import ObjectStore


@dataclass
class ApiContext:
    index: EventIndex
    store: ObjectStore
    cameras: Sequence[CameraConfig]
    settings: ApiConfig
    heartbeat_stale_s: float
    auth: Auth
    keys: ApiKeys
    sealer: CredentialSealer
    egress: EgressPolicy
    sites: Sites = field(init=False)
    evidence: Evidence = field(init=False)
    workflow: EventWorkflow = field(init=False)
    api_cameras: ApiCameras = field(init=False)
    heartbeats: Heartbeats = field(init=False)
    worker_stats: WorkerStats = field(init=False)

    def __post_init__(self) -> None:
        self.sites = Sites(self.index)
        self.evidence = Evidence(self.index, self.store)
        self.workflow = EventWorkflow(self.index)
        self.api_cameras = ApiCameras(self.index, self.sealer)
        self.heartbeats = Heartbeats(self.index)
        self.worker_stats = WorkerStats(self.index)

    def event(self, principal: Principal, event_id: str) -> EventRow:
        """The event, if it exists and the key may see its site; else the same 404."""
        row = self.index.get_event(event_id)
        if row is None or not principal.sees(row.site):
            raise HTTPException(404, f"no event {event_id}")
        return row

    def configured(self, camera_id: str) -> bool:
        return any(camera.id == camera_id for camera in self.cameras)

    def all_cameras(self, principal: Principal) -> list[CameraConfig]:
        """The key's sites' cameras: the config file's, then those added over the API (the
        config file's wins an id both have, as in the workers)."""
        cameras = self.api_cameras.beside(self.cameras, principal.sorted_sites)
        return [camera for camera in cameras if principal.sees(camera.site)]

    def camera(self, principal: Principal, camera_id: str) -> CameraConfig:
        """The camera, if it exists and the key may see its site; else the same 404."""
        camera = next((c for c in self.cameras if c.id == camera_id), None)
        camera = camera or self.api_cameras.get(camera_id)
        if camera is None or not principal.sees(camera.site):
            raise HTTPException(404, f"no camera {camera_id}")
        return camera

    def destination(self, principal: Principal, sites: Iterable[str]) -> Destination:
        """Where the platform may connect on the key's behalf: the egress policy, with the
        camera networks of `sites` (common/egress.py)."""
        return self.destination_of(sites, admin=principal.role == "admin")

    def destination_of(self, sites: Iterable[str], admin: bool) -> Destination:
        """`destination` for a key known only by whether it is an admin's."""
        networks = [
            network
            for site in sites
            if (row := self.sites.get(site)) is not None
            for network in parse_networks(row.networks)
        ]
        return self.egress.destination(networks, admin)

    @staticmethod
    def check_reach(destination: Destination, url: str, what: str, unresolved: bool) -> None:
        """A 403 naming `what` and the category of refusal if `destination` does not allow
        `url`'s address; a name that does not resolve (yet) passes where `unresolved` says
        (it is checked again at each connection)."""
        try:
            destination(*host_and_port(url))
        except EgressRefusedError as exc:
            if unresolved and exc.reason == "the host name does not resolve":
                return
            reason = f"{what} may not be reached by this key: {exc.reason}"
            raise HTTPException(403, reason) from None

    def site(self, principal: Principal, site_id: str) -> SiteRow:
        """The site, if it exists and the key may see it; else the same 404."""
        row = self.sites.get(site_id)
        if row is None or not principal.sees(site_id):
            raise HTTPException(404, f"no site {site_id}")
        return row


def client_of(request: Request) -> str | None:
    return request.client.host if request.client else None


def as_utc(moment: datetime | None) -> datetime | None:
    """Query times without a zone are taken as UTC."""
    if moment is None:
        return None
    try:
        return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    except OverflowError:
        raise HTTPException(422, "time out of range") from None
