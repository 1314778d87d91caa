"""Events to an MQTT broker: each change of each event, as the live streams see it."""

from __future__ import annotations

import json
import logging
import ssl

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from api.config import MqttConfig
from api.models import EventOut
from common.periodic import Periodic
from storage.feed import FeedReader
from storage.index import EventIndex
from storage.leases import holder_id

log = logging.getLogger(__name__)
ROUND_S = 0.25


class MqttPublisher:
    """Reads the event feed from where it stands at start and publishes each change to
    `PREFIX/SITE/CAMERA/TYPE` (JSON: the change and the event). paho keeps the connection,
    reconnects with backoff and queues what is published while the broker is away.

    Example:
        >>> publisher = MqttPublisher(index, MqttConfig(enabled=True))  # doctest: +SKIP
        >>> publisher.start()  # doctest: +SKIP
    """

    def __init__(self, index: EventIndex, config: MqttConfig) -> None:
        self.index = index
        self.config = config
        self.published = 0
        self._task: Periodic | None = None

    def start(self) -> None:
        config = self.config
        self._client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"xueliang-{holder_id()}")
        if config.username is not None:
            password = config.password.get_secret_value() if config.password else None
            self._client.username_pw_set(config.username, password)
        if config.tls:
            ca = str(config.ca_file) if config.ca_file else None
            self._client.tls_set(ca_certs=ca, tls_version=ssl.PROTOCOL_TLS_CLIENT)
        self._client.reconnect_delay_set(1, 30)
        self._client.max_queued_messages_set(10_000)
        self._client.connect_async(config.host, config.port)
        self._client.loop_start()
        self._reader = FeedReader(self.index)
        self._task = Periodic("mqtt", ROUND_S, self.round)
        self._task.start()
        log.info("publishing events to MQTT at %s:%d", config.host, config.port)

    def stop(self) -> None:
        if self._task is None:
            return
        self._task.stop()
        self._client.disconnect()
        self._client.loop_stop()

    def round(self) -> None:
        for entry in self._reader.read():
            event = entry.event
            if event is None:
                continue
            topic = f"{self.config.topic_prefix}/{event.site}/{event.camera_id}/{event.type}"
            body = {"change": entry.kind, "event": EventOut.of(event).model_dump(mode="json")}
            self._client.publish(topic, json.dumps(body), qos=self.config.qos)
            self.published += 1
