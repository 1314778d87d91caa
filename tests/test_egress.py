"""The egress policy: keys other than admins' cannot aim the platform's webhooks and camera
probes at its own services, the cloud's metadata address, loopback or networks that are not
their site's; names are checked by what they resolve to, at every connection and redirect; a
probe's failures do not tell what listens at an address."""

from __future__ import annotations

import ipaddress
import re
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from minio import Minio

from api.app import create_app
from api.config import ApiConfig
from common.egress import (
    EgressPolicy,
    EgressRefusedError,
    parse_networks,
    service_addresses,
    unmapped,
)
from ingest.config import CameraConfig
from ingest.probe import NO_STREAM, ProbeError, probe
from storage.database.accounts import SiteRow
from storage.database.index import EventIndex
from storage.database.webhooks import Webhooks
from storage.media.objects import ObjectStore
from tests.apiclient import LOCAL_PEERS, SEALER, Receiver, Served, api_client, make_key
from tests.servers import RtspCamera, free_port
from tests.test_webhooks import stored_event, wait_until
from xueliang.config import Config

SERVICE_PORT = 9333  # stands for the platform's object storage on 127.0.0.1
OUTSIDE = "a private address outside the site's camera networks"
LOCAL_PEERS_ONLY = EgressPolicy(allow=(ipaddress.ip_network("127.0.0.1/32"),))


def address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    return ipaddress.ip_address(text)


@pytest.mark.parametrize(
    ("target", "port", "site", "admin", "expected"),
    [
        ("8.8.8.8", 443, [], False, None),  # the internet
        ("127.0.0.1", 80, [], False, "a loopback address"),
        ("::1", 80, [], False, "a loopback address"),
        ("::ffff:127.0.0.1", 80, [], False, "a loopback address"),  # IPv4 written as IPv6
        ("169.254.169.254", 80, [], False, "a link-local address"),  # cloud metadata
        ("fe80::1", 80, [], False, "a link-local address"),
        ("0.0.0.0", 80, [], False, "not a unicast address"),
        ("224.0.0.251", 5353, [], False, "not a unicast address"),
        ("10.0.0.9", 554, ["10.0.0.0/24"], False, None),  # the site's cameras
        ("10.0.1.9", 554, ["10.0.0.0/24"], False, OUTSIDE),
        ("192.168.1.64", 554, [], False, OUTSIDE),
        ("100.64.3.2", 554, [], False, OUTSIDE),  # carriers' NAT
        ("fd00::7", 554, [], False, OUTSIDE),
        ("10.0.0.5", 8333, ["10.0.0.0/24"], False, "denied by the egress policy"),  # a service
        ("10.0.0.5", 554, ["10.0.0.0/24"], False, None),  # another port of that host
        ("127.0.0.1", 80, [], True, None),  # an admin's key
        ("203.0.113.9", 80, [], True, "denied by the egress policy"),  # denied for all
        ("198.51.100.7", 80, [], False, None),  # allowed by config
    ],
)  # fmt: skip
def test_the_rules_in_order(
    target: str, port: int, site: list[str], admin: bool, expected: str | None
) -> None:
    policy = EgressPolicy(
        allow=tuple(parse_networks(["198.51.100.0/24"])),
        deny=tuple(parse_networks(["203.0.113.0/24"])),
        services={(address("10.0.0.5"), 8333)},
    )
    assert policy.refusal(address(target), port, parse_networks(site), admin) == expected


def test_allowed_networks_do_not_open_the_platforms_own_services() -> None:
    policy = EgressPolicy(allow=(ipaddress.ip_network("127.0.0.1/32"),),
                          services={(address("127.0.0.1"), SERVICE_PORT)})  # fmt: skip
    assert policy.refusal(address("127.0.0.1"), 554, [], admin=False) is None
    assert policy.refusal(address("127.0.0.1"), SERVICE_PORT, [], admin=False) is not None
    assert unmapped(address("::ffff:10.1.2.3")) == address("10.1.2.3")


def test_a_name_passes_only_if_every_address_it_resolves_to_does() -> None:
    # localhost is 127.0.0.1 and ::1 here: one allowed by the config, one not.
    addresses = {info[4][0] for info in socket.getaddrinfo("localhost", 80)}
    policy = EgressPolicy(allow=(ipaddress.ip_network("127.0.0.1/32"),))
    assert policy.resolve("127.0.0.1", 80, [], admin=False) == "127.0.0.1"
    if "::1" in addresses:
        with pytest.raises(EgressRefusedError, match="loopback"):
            policy.resolve("localhost", 80, [], admin=False)
    with pytest.raises(EgressRefusedError, match="does not resolve"):
        policy.resolve("no-such-host.invalid", 80, [], admin=False)


def test_a_network_with_host_bits_is_named() -> None:
    with pytest.raises(ValueError, match=re.escape("'10.0.0.1/8' is not a network")):
        parse_networks(["10.0.0.0/24", "10.0.0.1/8"])
    with pytest.raises(ValueError, match=r"egress\.allow\n.*'lan' is not a network"):
        ApiConfig.model_validate({"egress": {"allow": ["lan"]}})


@pytest.fixture
def app(index: EventIndex) -> FastAPI:
    with index.sessions.begin() as session:
        session.add_all([SiteRow(id="shop-7", name="Shop 7"), SiteRow(id="bank-2", name="Bank")])
    store = ObjectStore(Minio(f"127.0.0.1:{free_port()}", "k", "s", secure=False), "unused")
    services = {(address("127.0.0.1"), SERVICE_PORT)}
    settings = ApiConfig(egress=LOCAL_PEERS)
    return create_app(index, store, [], settings, 5, SEALER, services=services)


def test_a_shop_key_cannot_aim_a_webhook_at_the_platform_the_cloud_or_other_networks(
    app: FastAPI, index: EventIndex
) -> None:
    hook = {"name": "alarms", "sites": ["shop-7"]}
    refused = {
        "http://169.254.169.254/latest/meta-data/": "a link-local address",
        "http://127.0.0.2:8080/hook": "a loopback address",
        f"http://127.0.0.1:{SERVICE_PORT}/bucket": "denied by the egress policy",
        "http://[::ffff:127.0.0.3]/hook": "a loopback address",
        "http://10.0.0.7/hook": OUTSIDE,
    }
    with api_client(app, index, "shop", ["shop-7"]) as shop:
        for url, reason in refused.items():
            answer = shop.post("/api/webhooks", json={**hook, "url": url})
            assert answer.status_code == 403, url
            assert answer.json()["error"]["message"].endswith(reason)
        assert shop.get("/api/webhooks").json() == []
        # A name that does not resolve yet is taken: it is checked at each delivery.
        later = shop.post("/api/webhooks", json={**hook, "url": "http://hooks.invalid/in"})
        assert later.status_code == 201
    with api_client(app, index, "admin") as admin:
        site = {"name": "Shop 7", "networks": ["10.0.0.0/24"]}
        assert admin.put("/api/sites/shop-7", json=site).json()["networks"] == ["10.0.0.0/24"]
        bad = admin.put("/api/sites/shop-7", json={**site, "networks": ["10.0.0.1/24"]})
        assert bad.status_code == 422 and "10.0.0.1/24" in bad.text
        own = admin.post("/api/webhooks", json={**hook, "url": "http://127.0.0.2:8080/hook"})
        assert own.status_code == 201  # admins' keys are trusted with loopback
    with api_client(app, index, "shop", ["shop-7"]) as shop:  # the site's LAN, now declared
        assert (
            shop.post("/api/webhooks", json={**hook, "url": "http://10.0.0.7/hook"}).status_code
            == 201
        )
    with api_client(app, index, "shop", ["bank-2"]) as bank:  # not the bank's network
        answer = bank.post(
            "/api/webhooks", json={**hook, "sites": ["bank-2"], "url": "http://10.0.0.7/hook"}
        )
        assert answer.status_code == 403


def test_an_installer_probes_and_adds_cameras_only_where_its_site_allows(
    app: FastAPI, index: EventIndex
) -> None:
    with api_client(app, index, "admin") as admin:
        site = {"name": "Shop 7", "networks": ["10.99.0.0/24"]}
        assert admin.put("/api/sites/shop-7", json=site).status_code == 200
    camera = {"id": "till", "site": "shop-7", "url": "rtsp://10.99.0.9/live"}
    with api_client(app, index, "installer", ["shop-7"]) as installer:
        probe = {"url": camera["url"], "timeout_s": 1}  # no site named: no camera networks
        assert (
            installer.post("/api/cameras/probe", json=probe)
            .json()["error"]["message"]
            .endswith(OUTSIDE)
        )
        for url in (
            "rtsp://169.254.169.254/x",
            "rtsp://127.0.0.2/x",
            f"http://127.0.0.1:{SERVICE_PORT}/",
        ):
            for path, body in (("/api/cameras/probe", {**probe, "url": url, "site": "shop-7"}),
                               ("/api/cameras", {**camera, "url": url})):  # fmt: skip
                assert installer.post(path, json=body).status_code == 403, (path, url)
        sub = {**camera, "detect_url": "rtsp://10.0.0.9/sub"}  # the sub-stream is checked too
        assert installer.post("/api/cameras", json=sub).status_code == 403
        assert installer.post("/api/cameras", json=camera).status_code == 201  # on its LAN
        moved = {**camera, "url": "rtsp://192.168.1.64/live"}
        assert installer.put("/api/cameras/till", json=moved).status_code == 403
        later = {**camera, "url": "rtsp://cam-7.invalid/live"}  # cannot be checked: refused
        assert installer.put("/api/cameras/till", json=later).status_code == 403
    with api_client(app, index, "admin") as admin:  # an admin may put a camera anywhere
        assert admin.put("/api/cameras/till", json=moved).status_code == 200
        assert admin.put("/api/cameras/till", json=later).status_code == 200


def test_a_delivery_is_checked_at_each_attempt_and_each_redirect(
    index: EventIndex, object_store: ObjectStore
) -> None:
    with index.sessions.begin() as session:
        session.add(SiteRow(id="shop-7", name="Shop 7"))
    inside = Receiver(host="127.0.0.2")  # loopback, but not where the tests' peers may be
    bouncer = Receiver(redirect_to=inside.url)  # allowed itself, redirects inside
    relay = Receiver()
    forwarder = Receiver(redirect_to=relay.url)  # redirects to an allowed receiver
    hooks = Webhooks(index)
    settings = ApiConfig(webhook_retry_min_s=0.3, webhook_retry_max_s=1.0, egress=LOCAL_PEERS)
    try:
        with Served(index, settings, heartbeat_stale_s=30, store=object_store) as served:
            key = make_key(index, "shop", ["shop-7"])
            auth = {"Authorization": f"Bearer {key}"}
            made = []
            for receiver in (bouncer, forwarder):
                body = {"name": "n", "url": receiver.url, "sites": ["shop-7"], "changes": ["clip"],
                        "max_attempts": 2}  # fmt: skip
                answer = httpx.post(
                    f"http://127.0.0.1:{served.port}/api/webhooks", json=body, headers=auth
                )
                made.append(answer.json()["id"])
            # As if its name resolved elsewhere since: a shop's subscription to loopback.
            rebound, _ = hooks.create("rebound", inside.url, "shop of tests", changes=["clip"],
                                      sites=["shop-7"], max_attempts=2)  # fmt: skip
            stored_event(index, object_store, "shop-7")
            wait_until(lambda: len(relay.requests) == 1, 30, "the allowed redirect followed")

            def states() -> list[str]:
                return [
                    d.state for hook in (made[0], rebound.id) for d, _ in hooks.deliveries(hook)
                ]

            wait_until(lambda: states() == ["dead", "dead"], 30, "both refused to the end")
            for hook in (made[0], rebound.id):
                for _, attempts in hooks.deliveries(hook):
                    assert all(a.error == "the receiver may not be reached: a loopback address"
                               for a in attempts)  # fmt: skip
            assert len(bouncer.requests) == 2 and inside.requests == []
            assert len(forwarder.requests) == 1
    finally:
        for receiver in (inside, bouncer, relay, forwarder):
            receiver.close()


class TcpPeer:
    """A server on `host` that counts its connections and answers each as `answer` says."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.server = socket.create_server((host, 0))
        self.port = self.server.getsockname()[1]
        self.connections = 0
        threading.Thread(target=self._serve, daemon=True).start()

    def answer(self, client: socket.socket) -> None:
        raise NotImplementedError

    def _serve(self) -> None:
        while True:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            self.connections += 1
            with client:
                self.answer(client)

    def close(self) -> None:
        self.server.close()


class RtspRedirector(TcpPeer):
    """An RTSP server that answers every request with a 302 to `location`."""

    def __init__(self, location: str) -> None:
        self.location = location
        super().__init__()

    def answer(self, client: socket.socket) -> None:
        request = client.recv(4096).decode(errors="replace")
        cseq = next((line.split(":", 1)[1].strip() for line in request.splitlines()
                     if line.lower().startswith("cseq")), "1")  # fmt: skip
        client.sendall(
            f"RTSP/1.0 302 Moved\r\nCSeq: {cseq}\r\nLocation: {self.location}\r\n\r\n".encode()
        )
        time.sleep(0.5)


class Listener(TcpPeer):
    """Something that is not a camera: it answers with junk."""

    def answer(self, client: socket.socket) -> None:
        client.sendall(b"220 mail.example ESMTP ready\r\n")
        client.recv(4096)


def probed(url: str, policy: EgressPolicy, timeout_s: float = 2.0) -> str:
    """The probe's answer for `url` as a shop's installer would get it: the codec, or why not."""
    camera = CameraConfig(id="probe", site="shop-7", url=url)
    try:
        return probe(camera, timeout_s, policy.destination([], admin=False)).codec
    except (ProbeError, EgressRefusedError) as exc:
        return str(exc)


@pytest.fixture(scope="module")
def camera(vtest_h264: Path) -> Iterator[RtspCamera]:
    server = RtspCamera({"door": vtest_h264})
    server.start()
    yield server
    server.stop()


def test_a_probe_does_not_tell_what_listens_nor_follow_a_redirect(camera: RtspCamera) -> None:
    policy = LOCAL_PEERS_ONLY
    assert probed(camera.url("door"), policy) == "h264"  # through the relay to the one address
    listener, inside = Listener(), Listener("127.0.0.2")
    redirector = RtspRedirector(f"rtsp://127.0.0.2:{inside.port}/door")
    try:
        closed = f"rtsp://127.0.0.1:{free_port()}/x"
        answers = {}
        for name, url in (("closed", closed), ("junk", f"rtsp://127.0.0.1:{listener.port}/x"),
                          ("redirect", f"rtsp://127.0.0.1:{redirector.port}/door")):  # fmt: skip
            started = time.monotonic()
            answers[name] = (probed(url, policy), round(time.monotonic() - started))
        assert answers == {name: (NO_STREAM, 2) for name in answers}  # alike, after the timeout
        assert listener.connections >= 1 and inside.connections == 0  # never followed
        assert probed(f"rtsp://127.0.0.2:{inside.port}/door", policy) == "a loopback address"
        assert inside.connections == 0
    finally:
        for server in (listener, inside, redirector):
            server.close()


def test_the_platforms_services_are_those_of_its_config() -> None:
    config = Config.model_validate({
        "api": {"host": "0.0.0.0", "port": 8080, "mqtt": {"enabled": True, "host": "mq.lan"}},
        "storage": {"type": "s3", "endpoint": "minio.lan:9000", "bucket": "xueliang",
                    "access_key": "a", "secret_key": "s", "public_url": "https://media.example.org"},
        "index": {"url": "postgresql://xl:pw@db.lan/xueliang"},
    })  # fmt: skip
    assert config.service_endpoints() == [
        ("0.0.0.0", 8080), ("minio.lan", 9000), ("media.example.org", 443), ("db.lan", 5432),
        ("mq.lan", 1883),
    ]  # fmt: skip
    found = service_addresses([("0.0.0.0", 8080), ("127.0.0.1", 8333), ("no-such.invalid", 1)])
    assert {(address("127.0.0.1"), 8080), (address("::1"), 8080)} <= found
    assert (address("127.0.0.1"), 8333) in found and (address("127.0.0.1"), 1) not in found
