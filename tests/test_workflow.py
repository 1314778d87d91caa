"""The operator's workflow over the API on SQLite and PostgreSQL: who did what and when, the
audit trail, the time to acknowledge, and operators who act at once."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
from minio import Minio

from api.app import create_app
from api.config import ApiConfig
from common.types import Event
from storage.database.index import AcknowledgementTimes, EventIndex
from storage.database.workflow import EventWorkflow, TransitionError
from storage.media.objects import ObjectStore
from tests.apiclient import SEALER, api_client
from tests.events import person_event
from tests.servers import free_port

pytestmark = pytest.mark.integration


def started_ago(index: EventIndex, minutes: float, site: str = "hq") -> Event:
    at = (datetime.now(UTC) - timedelta(minutes=minutes)).timestamp()
    event = person_event(site=site, started_at=at)
    index.add_event(event)
    return event


def test_an_event_goes_through_the_workflow_and_leaves_a_trail(index: EventIndex) -> None:
    quick, slow = started_ago(index, 2), started_ago(index, 10)
    store = ObjectStore(Minio(f"127.0.0.1:{free_port()}", "k", "s", secure=False), "unused")
    app = create_app(index, store, [], ApiConfig(), heartbeat_stale_s=5, sealer=SEALER)
    with api_client(app, index, "operator") as desk, api_client(app, index, "shop", ["hq"]) as shop:
        acted = desk.post(f"/api/events/{quick.id}/actions", json={"action": "acknowledge"})
        assert acted.status_code == 200, acted.text
        event = acted.json()
        assert event["status"] == "acknowledged" and event["acknowledged_by"] == "operator of tests"
        assert 115 < event["seconds_to_acknowledge"] < 180
        again = desk.post(f"/api/events/{quick.id}/actions", json={"action": "acknowledge"})
        assert again.status_code == 409
        assert again.json()["error"]["message"] == "cannot acknowledge a acknowledged event"
        steps = [("note", "called the guard"), ("resolve", "guard found nobody"), ("reopen", "")]
        for action, note in steps:
            answer = desk.post(
                f"/api/events/{quick.id}/actions", json={"action": action, "note": note}
            )
            assert answer.status_code == 200, answer.text
        assert answer.json()["status"] == "acknowledged" and answer.json()["closed_by"] is None
        trail = desk.get(f"/api/events/{quick.id}/actions").json()
        assert [(s["action"], s["from_status"], s["to_status"], s["note"]) for s in trail] == [
            ("acknowledge", "new", "acknowledged", ""),
            ("note", "acknowledged", "acknowledged", "called the guard"),
            ("resolve", "acknowledged", "resolved", "guard found nobody"),
            ("reopen", "resolved", "acknowledged", ""),
        ]
        assert {s["actor"] for s in trail} == {"operator of tests"}

        # A false alarm straight from "new" (one click on the wall) acknowledges it too.
        closed = desk.post(f"/api/events/{slow.id}/actions", json={"action": "false_alarm"}).json()
        assert (
            closed["status"] == "false_alarm" and closed["acknowledged_at"] == closed["closed_at"]
        )
        stats = desk.get("/api/stats/response").json()
        assert stats["events"] == 2 and stats["acknowledged"] == 2
        assert stats["within_5_minutes"] == 0.5  # 2 minutes and 10 minutes
        new_only = desk.get("/api/events", params={"status": "new"}).json()["items"]
        assert new_only == []

        assert (
            shop.post(f"/api/events/{quick.id}/actions", json={"action": "resolve"}).status_code
            == 403
        )
        bad = desk.post(f"/api/events/{quick.id}/actions", json={"action": "shrug"})
        assert (
            bad.status_code == 422 and bad.json()["error"]["fields"][0]["location"] == "body.action"
        )
        missing = desk.post("/api/events/nope/actions", json={"action": "acknowledge"})
        assert missing.status_code == 404


def race(workflow: EventWorkflow, event_id: str, desks: int) -> tuple[list[str], list[str]]:
    """`desks` operators acknowledge the event at the same moment: who won, who lost."""
    barrier = threading.Barrier(desks)
    won: list[str] = []
    lost: list[str] = []

    def acknowledge(name: str) -> None:
        barrier.wait()
        try:
            workflow.act(event_id, "acknowledge", name)
            won.append(name)
        except TransitionError:
            lost.append(name)

    threads = [threading.Thread(target=acknowledge, args=(f"desk-{n}",)) for n in range(desks)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return won, lost


def test_of_operators_acknowledging_at_once_one_does(index: EventIndex) -> None:
    workflow = EventWorkflow(index)
    for _ in range(5):
        event = started_ago(index, 1)
        won, lost = race(workflow, event.id, 4)
        assert len(won) == 1 and len(lost) == 3
        row = index.get_event(event.id)
        assert row is not None and row.acknowledged_by == won[0]
        assert [step.actor for step in workflow.trail(event.id)] == won


def test_acknowledgement_times_keep_to_the_range_and_the_sites(index: EventIndex) -> None:
    workflow = EventWorkflow(index)
    quick, slow, elsewhere = (
        started_ago(index, 2),
        started_ago(index, 10),
        started_ago(index, 5, "bank"),
    )
    started_ago(index, 1)  # not acknowledged
    too_old = started_ago(index, 2 * 24 * 60)
    for event in (slow, quick, elsewhere, too_old):
        workflow.act(event.id, "acknowledge", "desk")
    now = datetime.now(UTC)
    day = (now - timedelta(days=1), now + timedelta(seconds=1))

    def minutes(times: AcknowledgementTimes) -> tuple[int, list[int]]:
        return times.events, [round(wait / 60) for wait in times.waits]

    assert minutes(index.acknowledgement_times(*day)) == (4, [2, 5, 10])  # shortest first
    assert minutes(index.acknowledgement_times(*day, site="hq")) == (3, [2, 10])
    assert minutes(index.acknowledgement_times(*day, sites=["bank"])) == (1, [5])
    nowhere = index.acknowledgement_times(*day, site="hq", sites=["bank"])
    assert nowhere == AcknowledgementTimes(events=0, waits=[])
