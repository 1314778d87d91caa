"""The custody log proves itself: entries edited, deleted, reordered, cut off or re-chained in
the database directly are found (by the chain, the head, and the anchors in object storage
under object lock); entries appended from many connections at once form one line; an evidence
bundle is checked offline by its own script with nothing but Python."""

from __future__ import annotations

import io
import json
import secrets
import subprocess
import threading
import zipfile
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from minio.error import S3Error
from sqlalchemy import delete, select, text, update

from api.app import create_app
from api.config import ApiConfig
from storage.config import EvidenceConfig
from storage.database.custody import CustodyHeadRow, CustodyLog, CustodyRow
from storage.database.custody_chain import GENESIS, entry_sha256
from storage.database.engine import Database, create_index_engine
from storage.database.index import EventIndex
from storage.database.migrations import alembic_config
from storage.media.evidence import ANCHORS, Evidence
from storage.media.objects import ObjectStore
from tests.apiclient import SEALER, api_client
from tests.test_evidence import stored_event

pytestmark = pytest.mark.integration
SYSTEM_PYTHON = "/usr/bin/python3"  # not our virtual environment: the bundle needs nothing


@pytest.fixture
def store(object_store: ObjectStore) -> ObjectStore:
    """A bucket of the test's own, with object lock: its anchors are the test's alone."""
    bucket = f"custody-{secrets.token_hex(4)}"
    object_store.client.make_bucket(bucket, object_lock=True)
    return ObjectStore(object_store.client, bucket, EvidenceConfig(worm=True, mode="GOVERNANCE"))


Saved = tuple[list[dict[str, Any]], dict[str, Any] | None]


def saved(index: EventIndex) -> Saved:
    """Every custody row and the head, column by column."""
    with index.sessions() as session:
        found = session.scalars(select(CustodyRow).order_by(CustodyRow.id))
        entries = [
            {c.name: getattr(row, c.name) for c in CustodyRow.__table__.columns} for row in found
        ]
        head = session.get(CustodyHeadRow, 1)
        moved = None if head is None else {"id": 1, "seq": head.seq, "sha256": head.sha256}
        return entries, moved


def restore(index: EventIndex, log: Saved) -> None:
    entries, head = log
    with index.sessions.begin() as session:
        session.execute(delete(CustodyRow))
        session.execute(delete(CustodyHeadRow))
    with index.sessions.begin() as session:
        session.add_all(CustodyRow(**entry) for entry in entries)
        if head is not None:
            session.add(CustodyHeadRow(**head))


def tamper(index: EventIndex, *statements: str) -> None:
    """What someone with the database's password could do."""
    with index.sessions.begin() as session:
        for statement in statements:
            session.execute(text(statement))


def test_tampering_in_the_database_is_found(index: EventIndex, store: ObjectStore) -> None:
    evidence = Evidence(index, store)
    for event, action in (("e1", "hold"), ("e2", "fetch"), ("e1", "fetch"), ("e2", "verify"),
                          ("e1", "release")):  # fmt: skip
        evidence.log.append(event, action, "desk 3", detail=f"{action} of {event}")
    assert evidence.check_log() == ([], 0)
    assert evidence.anchor() == 5 and evidence.anchor() is None  # once per head
    assert evidence.check_log() == ([], 1)
    assert evidence.log.event_problems("e1") == [] == evidence.log.event_problems("e2")
    original = saved(index)

    def found_after(*statements: str) -> tuple[list[str], list[str], list[str]]:
        tamper(index, *statements)
        found = (
            evidence.check_log()[0],
            evidence.log.event_problems("e1"),
            evidence.log.event_problems("e2"),
        )
        restore(index, original)
        assert evidence.check_log() == ([], 1)  # as it was
        return found

    edited = found_after("UPDATE custody_log SET actor = 'someone else' WHERE id = 3")
    assert edited == (["entry 3: its content does not match its hash (edited)"],
                      ["entry 3: its content does not match its hash (edited)"], [])  # fmt: skip

    deleted = found_after("DELETE FROM custody_log WHERE id = 2")
    assert deleted[0] == ["entry 3: it does not follow the entry before it",
                          "entry 3: entries before it are missing"]  # fmt: skip
    assert deleted[2] == ["entry 4: it does not follow the entry before it"]  # e2 lost one

    swapped = found_after("UPDATE custody_log SET id = 1000 WHERE id = 2",
                          "UPDATE custody_log SET id = 2 WHERE id = 3",
                          "UPDATE custody_log SET id = 3 WHERE id = 1000")  # fmt: skip
    assert "entry 2: its content does not match its hash (edited)" in swapped[0]
    assert swapped[1] and swapped[2]

    tail = found_after("DELETE FROM custody_log WHERE id = 5")
    assert tail[0] == ["the log ends at entry 4, its head says 5",
                       "entry 5 is not the one anchored in storage"]  # fmt: skip
    assert tail[1] == ["the log ends at entry 4, its head says 5"]
    assert tail[2] == [*tail[1], "entry 4: the entry after it is missing or changed"]

    # The end cut off and the head moved back: chain and head agree; the anchor does not.
    four = original[0][3]["sha256"]
    cut = found_after("DELETE FROM custody_log WHERE id = 5",
                      f"UPDATE custody_head SET seq = 4, sha256 = '{four}'")  # fmt: skip
    assert cut == (["entry 5 is not the one anchored in storage"], [], [])

    # The whole chain rebuilt after an edit, every hash recomputed: consistent in itself, and
    # not what was anchored.
    with index.sessions.begin() as session:
        previous, of_event = GENESIS, dict[str, str]()
        for row in session.scalars(select(CustodyRow).order_by(CustodyRow.id)):
            row.actor = "forger" if row.id == 2 else row.actor
            row.previous_sha256 = previous
            row.event_previous_sha256 = of_event.get(row.event_id, GENESIS)
            row.sha256 = entry_sha256(row.entry())
            previous = of_event[row.event_id] = row.sha256
        session.execute(update(CustodyHeadRow).values(seq=5, sha256=previous))
    assert evidence.log.problems() == []  # without the anchors nothing shows
    assert evidence.check_log()[0] == ["entry 5 is not the one anchored in storage"]
    anchor = f"{ANCHORS}000000000005.json"
    assert store.keys(ANCHORS) == [anchor]
    with pytest.raises(S3Error):  # and the anchor is under object lock
        store.client.remove_object(store.bucket, anchor, version_id=store.versions(anchor)[0])


def test_appends_from_many_connections_form_one_line(index_url: str) -> None:
    EventIndex.connect(index_url)
    logs = [CustodyLog(Database.connect(index_url)) for _ in range(4)]

    def append(log: CustodyLog, worker: int) -> None:
        for step in range(10):
            log.append(f"e{step % 3}", "fetch", f"worker {worker}")

    threads = [threading.Thread(target=append, args=(log, n)) for n, log in enumerate(logs)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert logs[0].problems() == [] and logs[0].head()[0] == 40
    assert [entry["seq"] for entry in logs[0].entries()] == list(range(1, 41))


def test_existing_entries_are_chained_by_the_migration(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'index.db'}"
    engine = create_index_engine(url)
    with engine.begin() as connection:
        config = alembic_config()
        config.attributes["connection"] = connection
        command.upgrade(config, "0018")
        for row_id, event in ((3, "e1"), (7, "e2"), (8, "e1")):  # gaps, as autoincrement left
            connection.execute(
                text("INSERT INTO custody_log (id, event_id, action, actor, detail, at) "
                     "VALUES (:id, :event, 'fetch', 'desk', '', '2026-11-30 08:00:00.123456')"),
                {"id": row_id, "event": event},
            )  # fmt: skip
    engine.dispose()
    log = CustodyLog(Database.connect(url))  # migrated to head here
    assert [(e["seq"], e["event_id"]) for e in log.entries()] == [(1, "e1"), (2, "e2"), (3, "e1")]
    assert log.problems() == [] and log.event_problems("e1") == []
    appended = log.append("e2", "verify", "audit")
    assert appended.id == 4 and log.problems() == [] and log.event_problems("e2") == []


def run_verify(directory: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([SYSTEM_PYTHON, "verify.py", "."], cwd=directory, capture_output=True,
                          text=True, timeout=60)  # fmt: skip


def test_an_evidence_bundle_is_checked_offline_by_its_own_script(
    index: EventIndex, store: ObjectStore, tmp_path: Path
) -> None:
    store.ensure_bucket()
    event = stored_event(index, store)
    app = create_app(index, store, [], ApiConfig(), heartbeat_stale_s=5, sealer=SEALER)
    with api_client(app, index) as desk:
        assert desk.get(f"/api/events/{event.id}/clip").status_code == 200
        answer = desk.get(f"/api/events/{event.id}/bundle")
        assert answer.status_code == 200 and answer.headers["content-type"] == "application/zip"
        log = desk.get(f"/api/events/{event.id}/custody").json()
        assert [entry["action"] for entry in log] == ["fetch", "export"]
        assert [entry["seq"] for entry in log] == [1, 2]
        with api_client(app, index, "shop", ["hq"]) as shop:
            assert shop.get(f"/api/events/{event.id}/bundle").status_code == 403
        checked = desk.post("/api/custody/verify").json()
        assert checked == {"ok": True, "entries": 2, "anchors": 0, "problems": []}
    bundle = tmp_path / "bundle"
    zipfile.ZipFile(io.BytesIO(answer.content)).extractall(bundle)
    assert sorted(p.name for p in bundle.iterdir()) == [
        "README.txt", "clip.mp4", "manifest.json", "snapshot.jpg", "verify.py"]  # fmt: skip
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert [entry["action"] for entry in manifest["custody"]] == ["fetch", "export"]
    assert {f["name"]: f["sha256"] for f in manifest["files"]} == {
        "clip.mp4": index.get_event(event.id).clip_sha256,  # type: ignore[union-attr]
        "snapshot.jpg": index.get_event(event.id).snapshot_sha256,  # type: ignore[union-attr]
    }
    good = run_verify(bundle)
    assert good.returncode == 0 and good.stdout.startswith("OK"), good.stdout + good.stderr

    clip = bundle / "clip.mp4"
    original = clip.read_bytes()
    clip.write_bytes(original[:-1] + bytes([original[-1] ^ 1]))
    changed = run_verify(bundle)
    assert changed.returncode == 1
    assert changed.stdout.splitlines() == [
        "FAILED: clip.mp4: not the file the manifest names (changed)"
    ]
    clip.write_bytes(original)

    manifest["custody"][0]["actor"] = "someone else"
    (bundle / "manifest.json").write_text(json.dumps(manifest))
    edited = run_verify(bundle)
    assert edited.returncode == 1
    assert "FAILED: entry 1: its content does not match its hash (edited)" in edited.stdout


def test_a_bundle_of_tampered_media_is_refused_and_verification_shows_the_log(
    index: EventIndex, store: ObjectStore
) -> None:
    store.ensure_bucket()
    event = stored_event(index, store)
    row = index.get_event(event.id)
    assert row is not None and row.clip_key is not None
    store.put(row.clip_key, b"not the clip", "video/mp4")  # overwritten behind our back
    app = create_app(index, store, [], ApiConfig(), heartbeat_stale_s=5, sealer=SEALER)
    with api_client(app, index) as desk:
        refused = desk.get(f"/api/events/{event.id}/bundle")
        assert refused.status_code == 409
        assert refused.json()["error"]["message"] == (
            "the stored clip.mp4 does not match its recorded SHA-256"
        )
        tamper(index, "UPDATE custody_log SET detail = 'nothing to see' WHERE id = 1")
        verified = {v["kind"]: v for v in desk.post(f"/api/events/{event.id}/verify").json()}
        assert not verified["clip"]["ok"] and verified["snapshot"]["ok"]
        assert not verified["custody"]["ok"]
        assert "entry 1: its content does not match its hash" in verified["custody"]["problem"]
        whole = desk.post("/api/custody/verify").json()
        assert not whole["ok"] and whole["problems"][0].startswith("entry 1: its content")
