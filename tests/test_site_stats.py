"""The map's figures, `GET /api/stats/sites`, on SQLite and PostgreSQL: each of the key's
sites with its place and its events in the range, counted in one grouped query."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from minio import Minio

from api.app import create_app
from api.config import ApiConfig
from storage.database.accounts import Role, SiteRow
from storage.database.engine import utcnow
from storage.database.index import EventIndex, SiteEventCounts
from storage.media.objects import ObjectStore
from tests.apiclient import SEALER, api_client
from tests.events import person_event
from tests.servers import free_port

pytestmark = pytest.mark.integration


def stored_sites_and_events(index: EventIndex) -> datetime:
    """Three sites and their events (and one of a site with no row); when they were made."""
    now = utcnow()
    with index.sessions.begin() as session:
        session.add_all(
            [
                SiteRow(id="shop-7", name="Shop 7", latitude=31.23, longitude=121.47, grid_id="g1"),
                SiteRow(id="bank-2", name="Bank 2", latitude=31.2, longitude=121.5, grid_id="g2"),
                SiteRow(id="park-1", name="Park"),  # no events, no coordinates
            ]
        )
    for site, kind, severity, ago in [
        ("shop-7", "zone_intrusion", "high", timedelta(hours=1)),
        ("shop-7", "loitering", "medium", timedelta(hours=2)),
        ("shop-7", "zone_intrusion", "high", timedelta(days=10)),  # before the default week
        ("bank-2", "zone_intrusion", "low", timedelta(hours=3)),
        ("bank-2", "line_crossing", "high", timedelta(days=1)),
        ("ghost", "zone_intrusion", "high", timedelta(hours=1)),  # a site with no row
    ]:
        at = (now - ago).timestamp()
        index.add_event(
            person_event(camera_id="cam", site=site, type=kind, severity=severity, started_at=at)
        )
    return now


def test_each_site_has_its_place_and_its_events_counts(index: EventIndex) -> None:
    now = stored_sites_and_events(index)
    store = ObjectStore(Minio(f"127.0.0.1:{free_port()}", "k", "s", secure=False), "unused")
    app = create_app(index, store, [], ApiConfig(), heartbeat_stale_s=5, sealer=SEALER)

    def counts(answer: list[dict[str, object]]) -> dict[object, tuple[object, object]]:
        return {site["id"]: (site["events"], site["high"]) for site in answer}

    with api_client(app, index, "operator") as desk:
        answer = desk.get("/api/stats/sites")
        assert answer.status_code == 200, answer.text
        sites = answer.json()
        assert sites[2] == {
            "id": "shop-7", "name": "Shop 7", "latitude": 31.23, "longitude": 121.47,
            "grid_id": "g1", "events": 2, "high": 1,
        }  # fmt: skip
        assert sites[1]["latitude"] is None and sites[1]["grid_id"] == ""
        assert counts(sites) == {"bank-2": (2, 1), "park-1": (0, 0), "shop-7": (2, 1)}
        by_type = desk.get("/api/stats/sites", params={"type": "zone_intrusion"}).json()
        assert counts(by_type) == {"bank-2": (1, 0), "park-1": (0, 0), "shop-7": (1, 1)}
        month = {"start": (now - timedelta(days=30)).isoformat()}
        assert counts(desk.get("/api/stats/sites", params=month).json())["shop-7"] == (3, 2)
        hours = {"start": (now - timedelta(hours=5)).isoformat(), "end": now.isoformat()}
        assert counts(desk.get("/api/stats/sites", params=hours).json())["bank-2"] == (1, 0)
        too_long = {"start": (now - timedelta(days=40)).isoformat()}
        assert desk.get("/api/stats/sites", params=too_long).status_code == 422
        backwards = {"start": now.isoformat(), "end": (now - timedelta(days=1)).isoformat()}
        assert desk.get("/api/stats/sites", params=backwards).status_code == 422
    with api_client(app, index, "operator", ["shop-7"]) as shop_desk:
        assert counts(shop_desk.get("/api/stats/sites").json()) == {"shop-7": (2, 1)}
    roles: tuple[Role, ...] = ("installer", "shop")
    for role in roles:
        with api_client(app, index, role, ["shop-7"]) as other:
            assert other.get("/api/stats/sites").status_code == 403


def test_site_event_counts_keep_to_the_range_the_type_and_the_sites(index: EventIndex) -> None:
    now = stored_sites_and_events(index)
    week = (now - timedelta(days=7), now + timedelta(seconds=1))

    def counts(found: list[SiteEventCounts]) -> list[tuple[str, int, int]]:
        return [(c.site.id, c.events, c.high) for c in found]

    assert counts(index.site_event_counts(*week)) == [
        ("bank-2", 2, 1), ("park-1", 0, 0), ("shop-7", 2, 1),
    ]  # fmt: skip
    by_type = index.site_event_counts(*week, event_type="loitering")
    assert counts(by_type) == [("bank-2", 0, 0), ("park-1", 0, 0), ("shop-7", 1, 0)]
    scoped = index.site_event_counts(*week, sites=["park-1", "shop-7", "ghost"])
    assert counts(scoped) == [("park-1", 0, 0), ("shop-7", 2, 1)]
    shop = index.site_event_counts(*week, sites=["shop-7"])[0].site
    assert (shop.name, shop.latitude, shop.grid_id) == ("Shop 7", 31.23, "g1")
