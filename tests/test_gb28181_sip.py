"""GB/T 28181 signalling: devices register with digest authentication, keep alive and
unregister, tested against SIPp (Debian's sip-tester, a SIP peer we did not write) over UDP and
TCP; wrong passwords, replayed nonces, malformed and oversized messages, keepalives from
elsewhere and silent devices each get the right answer or none."""

from __future__ import annotations

import asyncio
import re
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import SecretStr

from api.app import create_app
from api.config import ApiConfig
from gb28181.config import Gb28181Config
from gb28181.digest import expected_response, parse_authorization
from gb28181.service import Signalling, serve
from gb28181.sip import parse
from storage.database.accounts import SiteRow
from storage.database.cameras import ApiCameras
from storage.database.devices import GbDeviceRow, GbDevices
from storage.database.index import EventIndex
from storage.database.media_sessions import GbMediaSessions
from tests.apiclient import SEALER, api_client
from tests.gb_device import Channel, GbDevice
from tests.servers import free_port
from tests.test_api import unreachable_store
from xueliang.config import Config
from xueliang.supervisor import Supervisor

pytestmark = pytest.mark.integration
SCENARIOS = Path(__file__).resolve().parent / "sipp"
DEFAULT_PASSWORD = "12345678"
DEVICE = "34020000001320000001"
CAM = "3402000000132000000"  # a channel's ID but its last digit


@dataclass
class Running:
    config: Gb28181Config
    signalling: Signalling
    devices: GbDevices


@pytest.fixture
def running(tmp_path: Path) -> Iterator[Running]:
    index = EventIndex.connect(f"sqlite:///{tmp_path / 'index.db'}")
    config = Gb28181Config(
        enabled=True,
        host="127.0.0.1",
        port=free_port(),
        password=SecretStr(DEFAULT_PASSWORD),
        keepalive_s=1.0,
        keepalive_misses=2,
        max_message_bytes=8192,
        source_rate_per_s=50.0,
        source_burst=100,
    )
    devices = GbDevices(index, SEALER)
    signalling = Signalling(config, devices, GbMediaSessions(index))
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()
    thread = threading.Thread(
        target=loop.run_until_complete, args=(serve(config, signalling, stop),)
    )
    thread.start()
    wait_until(lambda: answers_options(config), "the service listens")
    yield Running(config, signalling, devices)
    loop.call_soon_threadsafe(stop.set)
    thread.join(10)


def wait_until(predicate: Callable[[], Any], what: str, timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while not (found := predicate()):
        assert time.monotonic() < deadline, what
        time.sleep(0.05)
    return found


def answers_options(config: Gb28181Config) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(0.5)
        sock.sendto(request("OPTIONS", config, DEVICE), ("127.0.0.1", config.port))
        try:
            return sock.recv(4096).startswith(b"SIP/2.0 200")
        except TimeoutError:
            return False


def sipp(
    scenario: str, config: Gb28181Config, device: str, password: str, work: Path, **keys: Any
) -> subprocess.Popen[str]:
    command = [
        "sipp", f"127.0.0.1:{config.port}", "-sf", str(SCENARIOS / scenario), "-m", "1",
        "-t", keys.pop("transport", "u1"), "-i", "127.0.0.1", "-p", str(free_port()),
        "-s", device, "-au", device, "-ap", password, "-nostdin", "-timeout", "30",
        "-timeout_error", "-trace_err", "-trace_logs",
        "-key", "platform", config.id, "-key", "domain", config.domain,
    ]  # fmt: skip
    command += ["-d", str(keys.pop("pause_ms", 0))]  # the scenario's <pause/>
    for name, value in keys.items():
        command += ["-key", name, str(value)]
    return subprocess.Popen(
        command, cwd=work, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )


def finished(process: subprocess.Popen[str], work: Path) -> str:
    output, _ = process.communicate(timeout=60)
    logs = "".join(p.read_text(errors="replace") for p in work.glob("*_errors.log"))
    assert process.returncode == 0, f"SIPp failed:\n{output[-3000:]}\n{logs[-3000:]}"
    return "".join(p.read_text(errors="replace") for p in work.glob("*_logs.log"))


@pytest.mark.parametrize("transport", ["u1", "t1"])
def test_a_device_registers_keeps_alive_and_unregisters(
    running: Running, tmp_path: Path, transport: str
) -> None:
    process = sipp("register.xml", running.config, DEVICE, DEFAULT_PASSWORD, tmp_path,
                   transport=transport, pause_ms=2000)  # fmt: skip

    def online() -> GbDeviceRow | None:
        row = running.devices.get(DEVICE)
        return row if row is not None and row.online and row.keepalive_at is not None else None

    row = wait_until(online, "registered and kept alive", timeout=20)
    assert row.state == "pending" and row.site is None  # nobody approved it yet
    assert row.transport == ("UDP" if transport == "u1" else "TCP")
    assert row.host == "127.0.0.1" and row.user_agent == "SIPp GB device"
    log = finished(process, tmp_path)
    when = re.search(r"registered; Date (\S+)", log)
    assert when and re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}", when.group(1)), log
    gone = running.devices.get(DEVICE)
    assert gone is not None and not gone.online and gone.offline_reason == "unregistered"


def test_a_wrong_password_is_refused(running: Running, tmp_path: Path) -> None:
    finished(sipp("wrong_password.xml", running.config, DEVICE, "guess-1", tmp_path), tmp_path)
    assert running.devices.get(DEVICE) is None
    assert running.signalling.refused["Forbidden"] == 1


def test_a_site_password_with_its_prefix_approves_the_device_into_the_site(
    running: Running, tmp_path: Path
) -> None:
    running.devices.put_site_settings("garden", "Garden-Pa55", prefix="3402000000132")
    device, stranger = "34020000001320000007", "34020000001180000007"
    finished(sipp("register.xml", running.config, device, "Garden-Pa55", tmp_path), tmp_path)
    row = running.devices.get(device)
    assert row is not None and (row.state, row.site) == ("approved", "garden")
    finished(
        sipp("wrong_password.xml", running.config, stranger, "Garden-Pa55", tmp_path), tmp_path
    )
    assert running.devices.get(stranger) is None  # not its prefix: the site's password is not its


def request(
    method: str, config: Gb28181Config, device: str, *headers: str, body: bytes = b""
) -> bytes:
    """A request as a device sends it (our own client, for what SIPp cannot be made to do)."""
    lines = [
        f"{method} sip:{config.id}@{config.domain} SIP/2.0",
        f"Via: SIP/2.0/UDP 127.0.0.1:5060;rport;branch=z9hG4bK{secrets.token_hex(4)}",
        f"From: <sip:{device}@{config.domain}>;tag=1",
        f"To: <sip:{config.id if method != 'REGISTER' else device}@{config.domain}>",
        "Call-ID: test-1", f"CSeq: 1 {method}", *headers, f"Content-Length: {len(body)}", "", "",
    ]  # fmt: skip
    return "\r\n".join(lines).encode() + body


def exchange(config: Gb28181Config, data: bytes, source: str = "127.0.0.1") -> bytes | None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((source, 0))
        sock.settimeout(1.0)
        sock.sendto(data, ("127.0.0.1", config.port))
        try:
            return sock.recv(65535)
        except TimeoutError:
            return None


def status_of(reply: bytes | None) -> int | None:
    return parse(reply, 65535).status if reply else None


def registered(config: Gb28181Config, device: str, password: str, algorithm: str = "MD5") -> bytes:
    """REGISTER answered with a digest computed as RFC 2617/7616 say: the authorized request."""
    challenge = parse(exchange(config, request("REGISTER", config, device)) or b"", 65535)
    offered = [v for v in challenge.all("www-authenticate") if f"algorithm={algorithm}" in v]
    params = parse_authorization(offered[0])
    params = {**params, "username": device, "uri": f"sip:{config.id}@{config.domain}"}
    params = {**params, "nc": "00000001", "cnonce": "c0ffee", "qop": "auth", "algorithm": algorithm}
    params["response"] = expected_response(params, "REGISTER", password) or ""
    fields = ", ".join(f'{name}="{value}"' for name, value in params.items())
    return request("REGISTER", config, device, f"Authorization: Digest {fields}", "Expires: 60")


def test_sha256_digest_replays_malformed_input_and_silence(running: Running) -> None:
    config, refused = running.config, running.signalling.refused
    authorized = registered(config, DEVICE, DEFAULT_PASSWORD, "SHA-256")
    assert status_of(exchange(config, authorized)) == 200
    assert status_of(exchange(config, authorized)) == 403  # the same nonce and count again
    assert status_of(exchange(config, request("REGISTER", config, "3402000000132"))) == 400
    brief = request("REGISTER", config, DEVICE, "Expires: 5")
    assert status_of(exchange(config, brief)) == 423
    assert exchange(config, b"not SIP at all\r\n\r\n") is None
    assert exchange(config, b"\xff\xfe\r\n\r\n") is None
    assert exchange(config, request("OPTIONS", config, DEVICE) + b"x" * 10_000) is None  # too big
    assert refused["malformed: the first line is neither a SIP request nor a response"] == 1
    assert refused["malformed: the headers are not UTF-8"] == 1
    assert refused["malformed: Message Too Large"] == 1
    assert status_of(exchange(config, request("PUBLISH", config, DEVICE))) == 405

    keepalive = (
        b'<?xml version="1.0" encoding="GB2312"?><Notify><CmdType>Keepalive</CmdType><SN>2</SN>'
        b"<DeviceID>" + DEVICE.encode() + b"</DeviceID><Status>OK</Status></Notify>"
    )
    message = request(
        "MESSAGE", config, DEVICE, "Content-Type: Application/MANSCDP+xml", body=keepalive
    )
    assert (
        status_of(exchange(config, message, source="127.0.0.2")) == 403
    )  # not where it registered
    assert status_of(exchange(config, message)) == 200
    stranger = message.replace(DEVICE.encode(), b"34020000001320000099")
    assert status_of(exchange(config, stranger)) == 403  # never registered
    bad_xml = request("MESSAGE", config, DEVICE, body=b"<Notify><CmdType>Keep")
    assert status_of(exchange(config, bad_xml)) == 400

    def offline() -> GbDeviceRow | None:  # no keepalive for keepalive_s x keepalive_misses
        row = running.devices.get(DEVICE)
        return row if row is not None and not row.online else None

    silent = wait_until(offline, "offline after missed keepalives", timeout=10)
    assert silent.offline_reason == "keepalives missed"
    assert status_of(exchange(config, message)) == 200  # alive again: online again
    assert running.devices.get(DEVICE).online  # type: ignore[union-attr]


def test_sha256_digest_is_rfc_7616s() -> None:
    params = {
        "username": "Mufasa", "realm": "http-auth@example.org", "uri": "/dir/index.html",
        "algorithm": "SHA-256", "nonce": "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v",
        "nc": "00000001", "cnonce": "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ", "qop": "auth",
    }  # fmt: skip
    expected = "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"
    assert expected_response(params, "GET", "Circle of Life") == expected


def test_an_installer_approves_a_pending_device_and_its_own_password_replaces_the_default(
    running: Running,
) -> None:
    config, index = running.config, running.devices.database
    assert isinstance(index, EventIndex)
    with index.sessions.begin() as session:
        session.add_all([SiteRow(id="garden", name="Garden"), SiteRow(id="market", name="Market")])
    assert status_of(exchange(config, registered(config, DEVICE, DEFAULT_PASSWORD))) == 200
    app = create_app(index, unreachable_store(), [], ApiConfig(), 5, SEALER)
    with api_client(app, index, "admin") as admin:
        assert [(d["id"], d["state"]) for d in admin.get("/api/gb28181/devices").json()] == [
            (DEVICE, "pending")
        ]
    with api_client(app, index, "installer", ["garden"]) as installer:
        assert installer.get("/api/gb28181/devices").json() == []  # pending: not its site's yet
        assert installer.get(f"/api/gb28181/devices/{DEVICE}").json()["online"]  # by its ID
        body = {"site": "market", "name": "东门", "password": "Own-Pa55"}
        assert (
            installer.post(f"/api/gb28181/devices/{DEVICE}/approve", json=body).status_code == 404
        )
        approved = installer.post(
            f"/api/gb28181/devices/{DEVICE}/approve", json={**body, "site": "garden"}
        )
        assert approved.status_code == 200, approved.text
        shown = approved.json()
        assert (shown["state"], shown["site"], shown["name"], shown["has_password"]) == (
            "approved",
            "garden",
            "东门",
            True,
        )
        assert "Own-Pa55" not in approved.text and "password" not in shown
        assert [d["id"] for d in installer.get("/api/gb28181/devices").json()] == [DEVICE]
        settings = {"password": "Garden-Pa55", "auto_approve_prefix": "3402000000132"}
        put = installer.put("/api/sites/garden/gb28181", json=settings)
        assert put.json() == {
            "site": "garden",
            "has_password": True,
            "auto_approve_prefix": "3402000000132",
        }
        assert installer.put("/api/sites/market/gb28181", json=settings).status_code == 404
        assert installer.post("/api/gb28181/devices/1234/approve", json=body).status_code == 422
    with api_client(app, index, "shop", ["garden"]) as shop:
        assert shop.get("/api/gb28181/devices").status_code == 403
    # Its own password now, and only it: neither the default nor the site's.
    for password in (DEFAULT_PASSWORD, "Garden-Pa55"):
        assert status_of(exchange(config, registered(config, DEVICE, password))) == 403
    assert status_of(exchange(config, registered(config, DEVICE, "Own-Pa55"))) == 200
    with api_client(app, index, "installer", ["garden"]) as installer:
        assert installer.delete(f"/api/gb28181/devices/{DEVICE}").status_code == 204
    assert status_of(exchange(config, registered(config, DEVICE, DEFAULT_PASSWORD))) == 200
    again = running.devices.get(DEVICE)
    assert again is not None and again.state == "pending"  # forgotten: pending again


def test_the_supervisor_runs_the_sip_process_which_stops_on_sigterm(tmp_path: Path) -> None:
    port = free_port()
    raw = {
        "data_dir": str(tmp_path / "data"),
        "index": {"url": f"sqlite:///{tmp_path / 'index.db'}"},
        "gb28181": {"enabled": True, "host": "127.0.0.1", "port": port},
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(raw))
    config = Config.model_validate(raw)
    assert "sip" in [child.name for child in Supervisor(config, path).children]
    disabled = Config.model_validate({**raw, "gb28181": {"enabled": False}})
    assert "sip" not in [child.name for child in Supervisor(disabled, path).children]
    process = subprocess.Popen([sys.executable, "-m", "xueliang", "sip", str(path)], cwd=tmp_path)
    try:
        wait_until(lambda: answers_options(config.gb28181), "the sip process answers", 30)
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(15) == 0


def test_an_approved_nvr_is_asked_for_its_catalog_which_comes_in_parts(running: Running) -> None:
    config, index = running.config, running.devices.database
    assert isinstance(index, EventIndex)
    with index.sessions.begin() as session:
        session.add_all([SiteRow(id="garden", name="Garden"), SiteRow(id="market", name="Market")])
    group = "34020000002160000001"  # the NVR's tree: a virtual organisation, then its cameras
    channels = [Channel(group, "东区", "34020000001110000001")] + [
        Channel(f"{CAM}{n}", f"通道{n}", group, "ON" if n % 2 else "OFF")
        for n in range(1, 5)
    ] + [Channel("cam-5", "no valid ID", group)]  # fmt: skip
    nvr = GbDevice("34020000001110000001", DEFAULT_PASSWORD, ("127.0.0.1", config.port), channels)
    try:
        assert nvr.register() == 200 and nvr.keepalive() == 200
        nvr.keep_alive_every(0.5)
        time.sleep(1.5)  # a few rounds of the service: a pending device is not asked
        assert not any("<CmdType>Catalog</CmdType>" in r for r in nvr.received)
        running.devices.approve(nvr.device_id, "garden", "NVR")
        listed = wait_until(lambda: running.devices.channels(nvr.device_id), "the catalog", 15)
        assert [(c.id, c.name, c.parent_id, c.status) for c in listed] == sorted(
            (c.id, c.name, c.parent_id, c.status) for c in channels[:5]
        )  # by ID
        assert listed[0].ptz_type == 1 and listed[0].manufacturer == "Simulated"
        assert running.signalling.refused["a catalog item without a valid DeviceID"] == 1
        described = running.devices.get(nvr.device_id)
        assert described is not None
        assert (described.manufacturer, described.model, described.firmware) == (
            "Simulated",
            "NVR-4",
            "V4.2.0",
        )
        assert described.channel_count == len(channels)
        queries = [r for r in nvr.received if "<CmdType>Catalog</CmdType>" in r]
        assert len(queries) == 1 and queries[0].startswith(
            f"MESSAGE sip:{nvr.device_id}@127.0.0.1:{nvr.port}"
        )
        assert 'encoding="GB2312"' in queries[0]
        app = create_app(index, unreachable_store(), [], ApiConfig(), 5, SEALER)
        path = f"/api/gb28181/devices/{nvr.device_id}/channels"
        with api_client(app, index, "installer", ["garden"]) as installer:
            names = [c["name"] for c in installer.get(path).json()]
            assert names == [c.name for c in listed]
        with api_client(app, index, "installer", ["market"]) as stranger:
            assert stranger.get(path).status_code == 404
            # A channel of a device of another site is not the key's to add.
            taken = {"id": "taken", "site": "market", "url": f"gb28181://{nvr.device_id}/{CAM}1"}
            refused = stranger.post("/api/cameras", json=taken)
            assert refused.status_code == 403 and "not approved into this site" in refused.text
        # The video channels (not the tree's node) are cameras of the device's site, disabled
        # until an installer enables them; they follow the device into another site.
        cameras = ApiCameras(index, SEALER).list()
        assert [(c.id, c.name, c.site, c.enabled, c.url) for c in cameras] == [
            (f"{nvr.device_id}-{CAM}{n}", f"通道{n}", "garden", False,
             f"gb28181://{nvr.device_id}/{CAM}{n}")
            for n in range(1, 5)
        ]  # fmt: skip
        running.devices.approve(nvr.device_id, "market")
        assert {c.site for c in ApiCameras(index, SEALER).list()} == {"market"}
        running.devices.delete(nvr.device_id)
        assert ApiCameras(index, SEALER).list() == []
    finally:
        nvr.close()


def test_a_flood_from_one_address_is_dropped_and_others_are_served(running: Running) -> None:
    config = running.config
    flood = request("REGISTER", config, DEVICE, "Expires: 3600")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        for _ in range(config.source_burst + 100):
            sock.sendto(flood, ("127.0.0.1", config.port))
    wait_until(lambda: running.signalling.refused["over the per-address rate"] > 0, "dropped")
    other = "34020000001320000042"  # from another address: its own budget
    answer = exchange(config, request("REGISTER", config, other, "Expires: 3600"), "127.0.0.2")
    assert status_of(answer) == 401  # challenged as usual
