"""Shop alarm intake over the API: panels, Contact ID alarms becoming events with clip
requests, arming by the panel, by hand and by schedule, and gated rules."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from minio import Minio

from api.app import create_app
from api.config import ApiConfig
from storage.database.accounts import SiteRow
from storage.database.alarms import (
    AlarmClipRow,
    AlarmPanelRow,
    AlarmPanels,
    ArmedSink,
    Arming,
    expire_alarm_clips,
)
from storage.database.cameras import ApiCameras, NetworkCameraConfig
from storage.database.index import EventIndex
from storage.media.objects import ObjectStore
from tests.apiclient import SEALER, api_client
from tests.events import panel_alarm, person_event
from tests.servers import free_port
from tests.sinks import Collected

pytestmark = pytest.mark.integration
PANEL = {
    "account": "1234",
    "zones": {"3": ["door", "till"]},
    "pre_alarm_s": 30,
    "post_alarm_s": 5,
    "schedule": [{"start": "22:00", "end": "07:00"}],  # every night
}


def test_an_alarm_becomes_an_event_per_camera_with_a_clip_request(index: EventIndex) -> None:
    with index.sessions.begin() as session:
        session.add(SiteRow(id="shop-7", name="Shop 7", timezone="Asia/Shanghai"))
    for camera_id in ("door", "till"):
        ApiCameras(index, SEALER).put(
            NetworkCameraConfig(id=camera_id, site="shop-7", url=f"rtsp://127.0.0.1/{camera_id}")
        )
    store = ObjectStore(Minio(f"127.0.0.1:{free_port()}", "k", "s", secure=False), "unused")
    app = create_app(index, store, [], ApiConfig(), heartbeat_stale_s=5, sealer=SEALER)
    with (
        api_client(app, index, "installer", ["shop-7"]) as installer,
        api_client(app, index, "shop", ["shop-7"]) as shop,
    ):
        made = installer.put("/api/sites/shop-7/alarm-panel", json=PANEL)
        assert made.status_code == 200, made.text
        assert made.json()["gated_types"] == ["zone_intrusion"] and not made.json()["manual"]
        wrong = installer.put(
            "/api/sites/shop-7/alarm-panel", json={**PANEL, "zones": {"1": ["nowhere"]}}
        )
        assert wrong.status_code == 404  # no such camera

        at = datetime(2026, 11, 27, 2, 0, 5, tzinfo=UTC)
        raised = shop.post(
            "/api/alarms",
            json={"account": "1234", "zone": "3", "code": 130, "time": at.isoformat()},
        )
        assert raised.status_code == 202, raised.text
        events = raised.json()["events"]
        assert sorted(e["camera_id"] for e in events) == ["door", "till"]
        assert {(e["type"], e["severity"], e["detail"], e["zone"]) for e in events} == {
            ("alarm_panel", "high", "130 burglary alarm", "zone 3")
        }
        assert {datetime.fromisoformat(e["started_at"]) for e in events} == {at}
        with index.sessions() as session:
            asked = session.query(AlarmClipRow).all()
        assert sorted((a.camera_id, a.pre_s, a.post_s, a.state) for a in asked) == [
            ("door", 30.0, 5.0, "pending"), ("till", 30.0, 5.0, "pending")
        ]  # fmt: skip
        assert {a.event_id for a in asked} == {e["id"] for e in events}
        taken = AlarmPanels(index).take_clips(["door"], "w1")
        assert [t.camera_id for t in taken] == ["door"]
        assert AlarmPanels(index).take_clips(["door"], "w2") == []  # one worker takes each

        unknown = shop.post("/api/alarms", json={"account": "9999", "zone": "3", "code": 130})
        assert unknown.status_code == 404
        no_cameras = shop.post("/api/alarms", json={"account": "1234", "zone": "8", "code": 130})
        assert no_cameras.status_code == 422

        # The panel reports arming (Contact ID 401 closing) and disarming (401 opening).
        closing = {"account": "1234", "zone": "2", "code": 401, "qualifier": 3}
        assert shop.post("/api/alarms", json=closing).json() == {
            "kind": "arming", "armed": True, "events": []
        }  # fmt: skip
        assert shop.get("/api/sites/shop-7/alarm-panel").json()["armed_by"] == "panel user 2"
        opening = {**closing, "qualifier": 1}
        assert shop.post("/api/alarms", json=opening).json()["armed"] is False
        by_hand = shop.post("/api/sites/shop-7/arm", json={"armed": None}).json()
        assert by_hand["manual"] is False  # back to the schedule
        assert installer.post("/api/alarms", json=closing).status_code == 403


def test_the_schedule_arms_in_the_sites_time_zone(index: EventIndex) -> None:
    with index.sessions.begin() as session:
        session.add(SiteRow(id="shop-7", name="Shop 7", timezone="Asia/Shanghai"))
    panels = AlarmPanels(index)
    panels.put(
        AlarmPanelRow(
            site="shop-7", account="1234", zones={}, pre_alarm_s=30.0, post_alarm_s=5.0,
            gated_types=["zone_intrusion"], schedule=PANEL["schedule"],
        )
    )  # fmt: skip
    # 22:30 in Shanghai is 14:30 UTC; 12:00 there is 04:00 UTC.
    night = datetime(2026, 11, 27, 14, 30, tzinfo=UTC)
    day = night + timedelta(hours=-10, minutes=-30)
    assert panels.arming(night)["shop-7"].armed
    assert not panels.arming(day)["shop-7"].armed
    panels.set_armed("shop-7", True, "operator")
    assert panels.arming(day)["shop-7"].armed  # by hand, whatever the schedule says


def test_intrusion_counts_only_while_armed() -> None:
    collected = Collected()
    arming = {"shop-7": Arming(frozenset({"zone_intrusion"}), armed=False)}
    sink = ArmedSink(collected, lambda: arming)
    intrusion = person_event(camera_id="door", site="shop-7", zone="shop")
    loitering = person_event(
        camera_id="door", site="shop-7", type="loitering", zone="shop", severity="low"
    )
    elsewhere = person_event(zone="lawn")
    for event in (intrusion, loitering, elsewhere):
        sink.event_started(event)
        sink.event_ended(event)
    assert [e.id for e in collected.started] == [loitering.id, elsewhere.id]
    assert [e.id for e in collected.ended] == [loitering.id, elsewhere.id]
    arming["shop-7"] = Arming(frozenset({"zone_intrusion"}), armed=True)
    sink.event_started(intrusion)
    assert collected.started[-1].id == intrusion.id


def test_an_alarm_clip_no_worker_takes_ends_its_event_with_the_reason(index: EventIndex) -> None:
    now = datetime.now(UTC)
    requests = []
    for minutes_ago in (10, 1):
        at = now - timedelta(minutes=minutes_ago)
        event = panel_alarm(at.timestamp())
        index.add_event(event)
        requests.append(
            AlarmClipRow(event_id=event.id, site="shop-7", camera_id="door", alarm_at=at,
                         pre_s=30.0, post_s=5.0)
        )  # fmt: skip
    panels = AlarmPanels(index)
    panels.ask_clips(requests)
    old, fresh = (r.event_id for r in requests)
    assert expire_alarm_clips(panels, index, waited_s=300) == [old]
    row = index.get_event(old)
    assert row is not None and row.state == "ended"
    assert row.clip_error == "no worker ran camera door to cut the alarm clip"
    assert index.get_event(fresh).state == "active"  # type: ignore[union-attr]
    assert [r.event_id for r in panels.take_clips(["door"], "w1")] == [fresh]


def test_saving_a_panel_tells_a_key_nothing_of_other_sites_accounts(index: EventIndex) -> None:
    """An installer who tries another site's account number gets the same answer as for an
    unused one; each shop's alarms reach its own site, and only a key that sees both sites
    is told that they share an account."""
    with index.sessions.begin() as session:
        session.add_all([SiteRow(id="shop-7", name="Shop 7"), SiteRow(id="bank-2", name="Bank")])
    for camera_id, site in (("door", "shop-7"), ("vault", "bank-2")):
        ApiCameras(index, SEALER).put(
            NetworkCameraConfig(id=camera_id, site=site, url=f"rtsp://127.0.0.1/{camera_id}")
        )
    store = ObjectStore(Minio(f"127.0.0.1:{free_port()}", "k", "s", secure=False), "unused")
    app = create_app(index, store, [], ApiConfig(), heartbeat_stale_s=5, sealer=SEALER)
    bank_panel = {"account": "2222", "zones": {"1": ["vault"]}}
    with (
        api_client(app, index, "installer", ["bank-2"]) as bank_installer,
        api_client(app, index, "installer", ["shop-7"]) as shop_installer,
        api_client(app, index, "shop", ["shop-7"]) as shop,
        api_client(app, index, "shop", ["bank-2"]) as bank,
        api_client(app, index, "admin") as admin,
    ):
        assert bank_installer.put("/api/sites/bank-2/alarm-panel", json=bank_panel).is_success
        answers = {}
        for account in ("3333", "2222"):  # unused, then the bank's
            body = {"account": account, "zones": {"3": ["door"]}}
            answers[account] = shop_installer.put("/api/sites/shop-7/alarm-panel", json=body)
        assert answers["2222"].status_code == answers["3333"].status_code == 200
        assert answers["2222"].json() == {**answers["3333"].json(), "account": "2222"}

        alarm = {"account": "2222", "zone": "3", "code": 130}
        from_shop = shop.post("/api/alarms", json=alarm)
        assert from_shop.status_code == 202, from_shop.text
        assert [(e["site"], e["camera_id"]) for e in from_shop.json()["events"]] == [
            ("shop-7", "door")
        ]
        from_bank = bank.post("/api/alarms", json={**alarm, "zone": "1"})
        assert [(e["site"], e["camera_id"]) for e in from_bank.json()["events"]] == [
            ("bank-2", "vault")
        ]
        ambiguous = admin.post("/api/alarms", json=alarm)
        assert ambiguous.status_code == 409 and "bank-2, shop-7" in ambiguous.text
        taken = admin.put("/api/sites/bank-2/alarm-panel", json={**bank_panel, "account": "3333"})
        assert taken.status_code == 200  # no other site has 3333 now
        shop_panel = {"account": "3333", "zones": {"3": ["door"]}}
        again = admin.put("/api/sites/shop-7/alarm-panel", json=shop_panel)
        assert again.status_code == 409 and "bank-2" in again.text  # the admin sees both
