"""MQTT against Debian's mosquitto (started here, with a password), and Prometheus /metrics."""

from __future__ import annotations

import json
import os
import pwd
import queue
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from minio import Minio
from paho.mqtt.enums import CallbackAPIVersion
from pydantic import SecretStr

from api.app import create_app
from api.config import ApiConfig, MqttConfig
from api.mqtt import MqttPublisher
from storage.database.camera_health import CameraStatusRow, Heartbeats
from storage.database.engine import utcnow
from storage.database.index import EventIndex
from storage.database.leases import WorkerRow, WorkerStats
from storage.database.webhooks import WebhookOutboxRow
from storage.media.objects import ObjectStore
from tests.apiclient import SEALER, Served, api_client
from tests.events import till_loitering
from tests.servers import free_port

pytestmark = pytest.mark.integration
MQTT_USER, MQTT_PASSWORD = "xueliang", "Mq77-secret"


class Mosquitto:
    """Debian's mosquitto on a free loopback port, with one user."""

    def __init__(self, folder: Path) -> None:
        self.port = free_port()
        passwords = folder / "passwords"
        subprocess.run(
            ["mosquitto_passwd", "-c", "-b", str(passwords), MQTT_USER, MQTT_PASSWORD],
            check=True, capture_output=True,
        )  # fmt: skip
        passwords.chmod(0o600)
        config = folder / "mosquitto.conf"
        # As root, mosquitto would switch to its own user, who cannot read a test's folder.
        user = f"user {pwd.getpwuid(os.geteuid()).pw_name}\n"
        config.write_text(
            f"listener {self.port} 127.0.0.1\nallow_anonymous false\n"
            f"password_file {passwords}\npersistence false\n{user}"
        )
        self.process = subprocess.Popen(
            ["mosquitto", "-c", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        deadline = time.monotonic() + 10
        while not self._listening():
            assert self.process.poll() is None, self.process.stderr and self.process.stderr.read()
            assert time.monotonic() < deadline, "mosquitto did not start"
            time.sleep(0.1)

    def _listening(self) -> bool:
        with socket.socket() as sock:
            return sock.connect_ex(("127.0.0.1", self.port)) == 0

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(10)


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mosquitto]:
    folder = tmp_path_factory.mktemp("mosquitto")
    running = Mosquitto(folder)
    yield running
    running.stop()


def subscriber(broker: Mosquitto, password: str) -> tuple[mqtt.Client, queue.Queue[Any]]:
    messages: queue.Queue[Any] = queue.Queue()
    connected: queue.Queue[Any] = queue.Queue()
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"test-{free_port()}")
    client.username_pw_set(MQTT_USER, password)
    client.on_message = lambda _c, _u, message: messages.put(message)
    client.on_connect = lambda c, _u, _f, reason, _p: connected.put(reason)
    client.connect("127.0.0.1", broker.port)
    client.loop_start()
    reason = connected.get(timeout=10)
    if not reason.is_failure:
        client.subscribe("xueliang/#", qos=1)
        time.sleep(0.3)
    return client, messages


def test_events_are_published_per_site_camera_and_type(
    broker: Mosquitto, index: EventIndex, caplog: pytest.LogCaptureFixture
) -> None:
    client, messages = subscriber(broker, MQTT_PASSWORD)
    settings = ApiConfig(
        mqtt=MqttConfig(
            enabled=True, port=broker.port, username=MQTT_USER,
            password=SecretStr(MQTT_PASSWORD),
        )
    )  # fmt: skip
    try:
        with Served(index, settings, heartbeat_stale_s=30):
            time.sleep(1.0)  # the publisher is connected
            now = time.time()
            event = till_loitering(now)
            index.add_event(event)
            message = messages.get(timeout=10)
            assert message.topic == "xueliang/shop-7/door/loitering" and message.qos == 1
            body = json.loads(message.payload)
            assert body["change"] == "started" and body["event"]["id"] == event.id
    finally:
        client.loop_stop()
        client.disconnect()
    assert MQTT_PASSWORD not in caplog.text


def published(messages: queue.Queue[Any], count: int, timeout: float) -> list[str]:
    """The event ids of the next `count` messages, then none more for a second."""
    ids = [json.loads(messages.get(timeout=timeout).payload)["event"]["id"] for _ in range(count)]
    with pytest.raises(queue.Empty):
        messages.get(timeout=1.0)
    return ids


def test_one_api_process_publishes_and_another_goes_on_where_it_stopped(
    broker: Mosquitto, index: EventIndex
) -> None:
    client, messages = subscriber(broker, MQTT_PASSWORD)
    config = MqttConfig(
        enabled=True, port=broker.port, username=MQTT_USER, password=SecretStr(MQTT_PASSWORD)
    )
    first = MqttPublisher(index, config, holder="api-1", lease_s=2.0)
    second = MqttPublisher(index, config, holder="api-2", lease_s=2.0)

    def events(count: int) -> list[str]:
        made = []
        for _ in range(count):
            now = time.time()
            event = till_loitering(now)
            index.add_event(event)
            made.append(event.id)
        return made

    try:
        first.start()
        time.sleep(1.0)  # connected, and holding the lease
        second.start()
        time.sleep(1.0)
        before = events(3)
        assert published(messages, 3, timeout=10) == before  # once each: one publisher
        first.stop()  # its process ends (one that dies instead is followed after the lease)
        meanwhile = events(2)
        assert published(messages, 2, timeout=15) == meanwhile  # none lost in the handover
        assert (first.published, second.published) == (3, 2)
    finally:
        for publisher in (first, second):
            publisher.stop()
        client.loop_stop()
        client.disconnect()


def test_the_broker_refuses_a_wrong_password(broker: Mosquitto) -> None:
    client, _ = subscriber(broker, "wrong")
    client.loop_stop()
    assert not client.is_connected()


def test_metrics_show_cameras_workers_events_and_webhooks(tmp_path: Path) -> None:
    index = EventIndex.connect(f"sqlite:///{tmp_path / 'index.db'}")
    store = ObjectStore(Minio(f"127.0.0.1:{free_port()}", "k", "s", secure=False), "unused")
    app = create_app(index, store, [], ApiConfig(), heartbeat_stale_s=30, sealer=SEALER)
    for camera, site in (("door", "shop-7"), ("vault", "bank-2")):
        Heartbeats(index).put_status(
            CameraStatusRow(
                camera_id=camera, site=site, state="online", input_fps=12.5, decode_errors=3,
                updated_at=utcnow(),
            )
        )  # fmt: skip
    with index.sessions.begin() as session:
        session.add(WorkerRow(worker_id="w1", seen_at=utcnow()))
        session.add_all(
            WebhookOutboxRow(
                subscription_id="gone", event_id=f"e{n}", feed_id=n, payload={}, state=state
            )
            for n, state in enumerate(["pending", "dead", "delivered"])
        )
    WorkerStats(index).put(
        "w1", {"detector_p50_s": 0.021, "detector_p99_s": 0.05, "spool_entries": 4}
    )
    with (
        api_client(app, index, "operator") as desk,
        api_client(app, index, "operator", ["shop-7"]) as shop_desk,
        api_client(app, index, "shop", ["shop-7"]) as shop,
    ):
        time.sleep(0.3)
        now = time.time()
        index.add_event(till_loitering(now))
        time.sleep(0.6)  # a round of the live hub
        text = desk.get("/metrics").text
        assert 'xueliang_camera_input_fps{camera="door",site="shop-7"} 12.5' in text
        assert 'xueliang_camera_decode_errors_total{camera="vault",site="bank-2"} 3.0' in text
        assert 'xueliang_detector_latency_seconds{quantile="0.5",worker="w1"} 0.021' in text
        assert 'xueliang_worker_spool_entries{worker="w1"} 4.0' in text
        assert 'xueliang_events_total{type="loitering"} 1.0' in text
        assert "xueliang_webhook_backlog 1.0" in text and "xueliang_webhook_dead 1.0" in text
        limited = shop_desk.get("/metrics").text
        assert 'camera="door"' in limited and "vault" not in limited and "worker=" not in limited
        assert shop.get("/metrics").status_code == 403
