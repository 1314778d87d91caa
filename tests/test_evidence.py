"""Evidence on a real S3 server (SeaweedFS): tampering is found, object lock and legal holds
keep media from deletion, and the retention sweeper deletes exactly what expired, objects
and index rows together."""

from __future__ import annotations

import hashlib
import io
import secrets
from datetime import UTC, datetime, timedelta

import pytest
from minio.commonconfig import COMPLIANCE, ENABLED
from minio.error import S3Error
from minio.retention import Retention
from minio.versioningconfig import VersioningConfig

from api.app import create_app
from api.config import ApiConfig
from common.types import Event
from storage.config import EvidenceConfig
from storage.database.camera_health import CameraStatusRow, Heartbeats
from storage.database.engine import to_datetime
from storage.database.index import EventFeedRow, EventIndex
from storage.database.recordings import RecordingRow
from storage.database.webhooks import WebhookAttemptRow, WebhookOutboxRow
from storage.media.continuous import recording_row
from storage.media.evidence import Evidence
from storage.media.objects import (
    SHA256_META,
    ObjectStore,
    StorageConfigError,
    StoredObject,
    object_key,
)
from storage.media.retention import RetentionConfig, RetentionPolicy, RetentionSweeper
from tests.apiclient import SEALER, api_client
from tests.events import person_event

NOW = datetime(2026, 6, 1, tzinfo=UTC)
pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def locked_store(object_store: ObjectStore) -> ObjectStore:
    """A second bucket on the same server, made with object lock (WORM)."""
    bucket = f"worm-{secrets.token_hex(4)}"
    object_store.client.make_bucket(bucket, object_lock=True)
    return ObjectStore(object_store.client, bucket)


def stored_event(
    index: EventIndex,
    store: ObjectStore,
    camera: str = "gate",
    site: str = "hq",
    ended_days_ago: float = 1.0,
    retain: Retention | None = None,
) -> Event:
    """An ended event with a clip and a snapshot in `store`, as the recorder leaves it."""
    ended = (NOW - timedelta(days=ended_days_ago)).timestamp()
    event = person_event(
        camera_id=camera, site=site, started_at=ended - 20, last_seen_at=ended, ended_at=ended
    )
    index.add_event(event)
    keys = {}
    for name, data in (("clip", secrets.token_bytes(2048)), ("snapshot", secrets.token_bytes(512))):
        key = object_key(site, camera, event.started_at, f"{event.id}.{name}")
        stored = store.put(key, data, "application/octet-stream", {"event-id": event.id})
        if retain is not None:
            store.client.set_object_retention(store.bucket, key, retain)
        keys[name] = stored
    end, clip, snapshot = to_datetime(ended), keys["clip"], keys["snapshot"]
    index.store_clip(event, end, (clip.key, clip.sha256, clip.size), (end, end))
    index.store_snapshot(event, end, snapshot.key, snapshot.sha256, snapshot.size)
    return event


def exists(store: ObjectStore, key: str | None) -> bool:
    assert key is not None
    try:
        store.client.stat_object(store.bucket, key)
    except S3Error:
        return False
    return True


def test_a_tampered_clip_fails_verification(index: EventIndex, object_store: ObjectStore) -> None:
    evidence = Evidence(index, object_store)
    event = stored_event(index, object_store)
    assert [v.ok for v in evidence.verify_event(event.id, actor="operator-7")] == [True, True]

    row = index.get_event(event.id)
    assert row is not None and row.clip_key is not None and row.clip_sha256 is not None
    forged = b"not the camera's footage"  # same key, same recorded hash: only the bytes differ
    object_store.client.put_object(
        object_store.bucket, row.clip_key, io.BytesIO(forged), len(forged),
        metadata={SHA256_META: row.clip_sha256},
    )  # fmt: skip
    clip, snapshot = evidence.verify_event(event.id, actor="audit")
    assert not clip.ok and clip.problem == "content does not match the index"
    assert snapshot.ok
    log = [(c.action, c.actor, c.detail) for c in evidence.custody(event.id)]
    assert log[-2:] == [("verify", "audit", clip.problem), ("verify", "audit", "ok")]


def test_the_audit_rechecks_what_was_not_checked_lately(
    index: EventIndex, object_store: ObjectStore
) -> None:
    evidence = Evidence(index, object_store)
    events = [stored_event(index, object_store, camera=f"cam-{k}") for k in range(3)]
    evidence.verify_event(events[0].id, actor="operator-7")
    checked = evidence.audit(older_than=timedelta(hours=1))
    assert sorted({v.key.split("/")[-1].split(".")[0] for v in checked}) == sorted(
        e.id for e in events[1:]
    )
    assert evidence.audit(older_than=timedelta(hours=1)) == []  # all checked just now


def test_the_server_refuses_to_delete_a_locked_clip_and_the_sweeper_keeps_it(
    index: EventIndex, locked_store: ObjectStore
) -> None:
    until = datetime.now(UTC) + timedelta(days=1)
    event = stored_event(
        index, locked_store, ended_days_ago=90, retain=Retention(COMPLIANCE, until)
    )
    row = index.get_event(event.id)
    assert row is not None and row.clip_key is not None
    (version,) = [
        o.version_id
        for o in locked_store.client.list_objects(
            locked_store.bucket, prefix=row.clip_key, include_version=True
        )
    ]
    with pytest.raises(S3Error, match="AccessDenied"):
        locked_store.client.remove_object(locked_store.bucket, row.clip_key, version_id=version)

    evidence = Evidence(index, locked_store)
    result = RetentionSweeper(index, locked_store, evidence, RetentionConfig()).sweep(NOW)
    assert result.events == [] and row.clip_key in result.locked
    assert index.get_event(event.id) is not None and exists(locked_store, row.clip_key)


def test_a_legal_hold_keeps_an_expired_event_until_released(
    index: EventIndex, object_store: ObjectStore
) -> None:
    evidence = Evidence(index, object_store)
    event = stored_event(index, object_store, ended_days_ago=60)
    evidence.hold(event.id, actor="investigator-2", reason="case 2026-117")
    sweeper = RetentionSweeper(index, object_store, evidence, RetentionConfig())

    result = sweeper.sweep(NOW)
    assert result.held == [event.id] and result.events == []
    row = index.get_event(event.id)
    assert row is not None and exists(object_store, row.clip_key)

    evidence.release(event.id, actor="investigator-2")
    assert sweeper.sweep(NOW).events == [event.id]
    assert index.get_event(event.id) is None
    assert not exists(object_store, row.clip_key) and not exists(object_store, row.snapshot_key)
    actions = [(c.action, c.actor) for c in evidence.custody(event.id)]
    assert actions == [
        ("hold", "investigator-2"), ("release", "investigator-2"), ("delete", "retention")
    ]  # fmt: skip


def stored_segment(
    index: EventIndex, store: ObjectStore, camera: str, days_ago: float, size: int
) -> str:
    start = (NOW - timedelta(days=days_ago)).timestamp()
    # unique: the buckets are shared by the tests (and by each backend's run of one)
    key = object_key("hq", camera, start, f"recordings/{camera}-{secrets.token_hex(4)}.mp4")
    stored: StoredObject = store.put(key, secrets.token_bytes(size), "video/mp4", {})
    metadata = {
        "site": "hq", "camera": camera, "start": str(start), "end": str(start + 60),
        "connection": "1", "first-pts": "0", "time-base": "1/90000",
    }  # fmt: skip
    with index.sessions.begin() as session:
        session.add(recording_row(metadata, stored))
    return key


def test_the_sweeper_deletes_what_expired_and_leaves_everything_else(
    index: EventIndex, object_store: ObjectStore
) -> None:
    config = RetentionConfig(
        default=RetentionPolicy(event_days=30, recording_days=7),
        sites={"bank": RetentionPolicy(event_days=180, recording_days=None)},
        cameras={
            "till": RetentionPolicy(event_days=30, recording_max_bytes=3000),
            "lobby": RetentionPolicy(event_days=None, event_max_bytes=6000),
        },
    )
    old = stored_event(index, object_store, camera="gate", ended_days_ago=45)
    young = stored_event(index, object_store, camera="gate", ended_days_ago=10)
    bank = stored_event(index, object_store, camera="vault", site="bank", ended_days_ago=45)
    # 2,560 bytes each (clip and snapshot): a budget of 6,000 keeps the newest two
    lobby = [
        stored_event(index, object_store, camera="lobby", ended_days_ago=d) for d in (90, 3, 2)
    ]
    old_segment = stored_segment(index, object_store, "gate", days_ago=8, size=1000)
    new_segment = stored_segment(index, object_store, "gate", days_ago=6, size=1000)
    till = [stored_segment(index, object_store, "till", days_ago=d, size=1000) for d in (3, 2, 1)]
    till_newest = stored_segment(index, object_store, "till", days_ago=0.5, size=1000)

    evidence = Evidence(index, object_store)
    result = RetentionSweeper(index, object_store, evidence, config).sweep(NOW)
    assert sorted(result.events) == sorted([old.id, lobby[0].id])
    assert sorted(result.recordings) == sorted([old_segment, till[0]])  # too old; over budget
    assert index.get_event(old.id) is None
    for kept in (young, bank, *lobby[1:]):
        assert index.get_event(kept.id) is not None
    with index.sessions() as session:
        left = {row.key for row in session.query(RecordingRow)}
    assert left == {new_segment, *till[1:], till_newest}
    for key in left:
        assert exists(object_store, key)
    assert not exists(object_store, old_segment) and not exists(object_store, till[0])


def test_a_sweep_deletes_at_most_a_batch_per_camera_oldest_first(
    index: EventIndex, object_store: ObjectStore
) -> None:
    expired = [stored_event(index, object_store, ended_days_ago=d) for d in (60, 50, 40)]
    budget = [stored_event(index, object_store, "lobby", ended_days_ago=d) for d in (3, 2, 1)]
    kept = stored_event(index, object_store, ended_days_ago=1)
    config = RetentionConfig(
        default=RetentionPolicy(event_days=30),
        cameras={"lobby": RetentionPolicy(event_days=None, event_max_bytes=2560)},
        sweep_batch=2,
    )
    sweeper = RetentionSweeper(index, object_store, Evidence(index, object_store), config)
    first = sweeper.sweep(NOW).events
    assert sorted(first) == sorted([expired[0].id, expired[1].id, budget[1].id, budget[0].id])
    assert sweeper.sweep(NOW).events == [expired[2].id]
    assert sweeper.sweep(NOW).events == []
    assert index.get_event(kept.id) is not None and index.get_event(budget[2].id) is not None


def test_the_api_logs_every_fetch_and_verifies_and_holds(
    index: EventIndex, object_store: ObjectStore
) -> None:
    event = stored_event(index, object_store)
    app = create_app(index, object_store, [], ApiConfig(), heartbeat_stale_s=5, sealer=SEALER)
    with api_client(app, index) as http:
        clip = http.get(f"/api/events/{event.id}/clip")
        assert clip.status_code == 200 and len(clip.content) == 2048
        assert clip.headers["accept-ranges"] == "bytes"
        # A video element seeks with ranges: only the viewing's first is a custody entry.
        part = http.get(f"/api/events/{event.id}/clip", headers={"Range": "bytes=100-199"})
        assert part.status_code == 206 and part.content == clip.content[100:200]
        assert part.headers["content-range"] == "bytes 100-199/2048"
        tail = http.get(f"/api/events/{event.id}/clip", headers={"Range": "bytes=-48"})
        assert tail.status_code == 206 and tail.content == clip.content[-48:]
        outside = http.get(f"/api/events/{event.id}/clip", headers={"Range": "bytes=4096-"})
        assert outside.status_code == 416
        moved = http.get(f"/api/events/{event.id}/snapshot?redirect=true", follow_redirects=False)
        assert moved.status_code == 307
        verified = http.post(f"/api/events/{event.id}/verify").json()
        kinds = [(v["kind"], v["ok"]) for v in verified]
        assert kinds == [("clip", True), ("snapshot", True), ("custody", True)]
        assert http.put(f"/api/events/{event.id}/hold", json={"reason": ""}).status_code == 422
        hold = http.put(f"/api/events/{event.id}/hold", json={"reason": "case 2026-117"})
        assert hold.status_code == 204
        assert Evidence(index, object_store).held([event.id]) == {event.id}
        assert http.delete(f"/api/events/{event.id}/hold").status_code == 204
        assert http.post("/api/events/nope/verify").status_code == 404
        log = http.get(f"/api/events/{event.id}/custody").json()
    assert [(entry["action"], entry["media"]) for entry in log] == [
        ("fetch", "clip"), ("fetch", "snapshot"), ("verify", "clip"), ("verify", "snapshot"),
        ("hold", None), ("release", None),
    ]  # fmt: skip
    assert {entry["client"] for entry in log[:2]} == {"testclient"}
    assert log[1]["detail"] == "presigned" and log[4]["detail"] == "case 2026-117"


def test_with_worm_the_bucket_is_locked_and_clips_are_retained(object_store: ObjectStore) -> None:
    worm = EvidenceConfig(worm=True, mode="GOVERNANCE", retain_days=3)
    store = ObjectStore(object_store.client, f"evidence-{secrets.token_hex(4)}", worm)
    store.ensure_bucket()
    store.ensure_bucket()  # again: it exists, with its lock
    data = secrets.token_bytes(1000)
    digest = hashlib.sha256(data).hexdigest()
    for key, evidence in (("clip.mp4", True), ("recording.mp4", False)):
        store.put_stream(
            key, io.BytesIO(data), len(data), "video/mp4", {}, digest, evidence=evidence
        )
    retention = store.retention("clip.mp4")
    assert retention is not None and retention.mode == "GOVERNANCE"
    until = retention.retain_until_date
    assert until is not None
    assert timedelta(days=2.9) < until - datetime.now(UTC) < timedelta(days=3.1)
    assert store.retention("recording.mp4") is None

    unlocked = ObjectStore(object_store.client, object_store.bucket, worm)
    with pytest.raises(
        StorageConfigError, match=f"bucket '{object_store.bucket}' was made without"
    ):
        unlocked.ensure_bucket()


def test_on_a_locked_bucket_expired_media_without_retention_are_swept(
    index: EventIndex, locked_store: ObjectStore
) -> None:
    """Recordings get no object-lock retention: once expired, every version of them goes."""
    old = stored_segment(index, locked_store, "gate", days_ago=8, size=1000)
    young = stored_segment(index, locked_store, "gate", days_ago=1, size=1000)
    evidence = Evidence(index, locked_store)
    result = RetentionSweeper(index, locked_store, evidence, RetentionConfig()).sweep(NOW)
    assert result.recordings == [old] and result.locked == []
    assert locked_store.versions(old) == [] and len(locked_store.versions(young)) == 1


def test_a_hold_placed_before_the_upload_reaches_the_object(
    index: EventIndex, locked_store: ObjectStore
) -> None:
    """Held while its clip still waited in the spool: the next evidence round holds it."""
    event = person_event(started_at=1e9, last_seen_at=1e9 + 5)
    index.add_event(event)
    evidence = Evidence(index, locked_store)
    evidence.hold(event.id, actor="investigator-2", reason="case 2026-118")
    key = object_key("hq", "gate", event.started_at, f"{event.id}.mp4")
    stored = locked_store.put(key, secrets.token_bytes(1000), "video/mp4", {})
    ended = to_datetime(event.last_seen_at)
    index.store_clip(event, ended, (stored.key, stored.sha256, stored.size), (ended, ended))
    (version,) = locked_store.versions(key)
    assert not locked_store.legal_hold(key, version)
    assert evidence.reconcile_holds() == 1
    assert locked_store.legal_hold(key, version)
    evidence.release(event.id, actor="investigator-2")
    assert not locked_store.legal_hold(key, version)


def test_on_a_versioned_bucket_every_version_of_an_expired_object_goes(
    index: EventIndex, object_store: ObjectStore
) -> None:
    store = ObjectStore(object_store.client, f"versioned-{secrets.token_hex(4)}")
    store.ensure_bucket()
    store.client.set_bucket_versioning(store.bucket, VersioningConfig(ENABLED))
    old = stored_segment(index, store, "gate", days_ago=8, size=1000)
    store.put(old, secrets.token_bytes(1000), "video/mp4", {})  # a second version of it
    assert len(store.versions(old)) == 2
    result = RetentionSweeper(index, store, Evidence(index, store), RetentionConfig()).sweep(NOW)
    assert result.recordings == [old] and store.versions(old) == []


def test_a_sweep_trims_the_feed_settled_deliveries_and_camera_health(
    index: EventIndex, object_store: ObjectStore
) -> None:
    old, recent = NOW - timedelta(days=40), NOW - timedelta(days=1)
    for days in (8, 1):  # beyond health_days (7), and within
        at = NOW - timedelta(days=days)
        Heartbeats(index).put_status(
            CameraStatusRow(camera_id="g", site="hq", state="online", updated_at=at)
        )
    with index.sessions.begin() as session:
        session.add_all(
            [
                EventFeedRow(event_id="e-old", site="hq", kind="started", at=old),
                EventFeedRow(event_id="e-new", site="hq", kind="started", at=recent),
            ]
        )
        for feed_id, (state, created) in enumerate(
            [("delivered", old), ("dead", old), ("pending", old), ("delivered", recent)]
        ):
            delivery = WebhookOutboxRow(
                subscription_id="s", event_id=f"e{feed_id}", feed_id=feed_id, payload={},
                state=state, created_at=created,
            )  # fmt: skip
            session.add(delivery)
            session.flush()
            session.add(WebhookAttemptRow(delivery_id=delivery.id, subscription_id="s", attempt=1))
    RetentionSweeper(index, object_store, Evidence(index, object_store), RetentionConfig()).sweep(
        NOW
    )
    with index.sessions() as session:
        assert [r.event_id for r in session.query(EventFeedRow)] == ["e-new"]
        kept = sorted((r.state, r.event_id) for r in session.query(WebhookOutboxRow))
        assert kept == [("delivered", "e3"), ("pending", "e2")]  # a pending one waits still
        assert session.query(WebhookAttemptRow).count() == 2
    assert [p.minute for p in Heartbeats(index).history("g", old)] == [recent]
