"""Events to an MQTT broker: each change of each event, as the live streams see it."""

from __future__ import annotations

import json
import logging
import ssl
import time

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from api.config import MqttConfig
from api.models import EventOut
from common.periodic import Periodic
from storage.database.feed import FeedReader
from storage.database.index import EventIndex
from storage.database.leases import ChoreTurns, holder_id

log = logging.getLogger(__name__)
ROUND_S = 0.25
CHORE = "mqtt"
LEASE_S = 10.0  # a publisher that stops renewing is followed by another after this long


class MqttPublisher:
    """Publishes each change of the event feed to `PREFIX/SITE/CAMERA/TYPE` (JSON: the change
    and the event). Of the API processes that have it on, one at a time publishes: the one
    holding the `mqtt` chore's lease, storing how far it got, so that the next one goes on
    from there when it lapses (a change may come twice then, none is left out). paho keeps
    the connection, reconnects with backoff and queues what is published while the broker
    is away.

    Example:
        >>> publisher = MqttPublisher(index, MqttConfig(enabled=True))  # doctest: +SKIP
        >>> publisher.start()  # doctest: +SKIP
    """

    def __init__(
        self,
        index: EventIndex,
        config: MqttConfig,
        holder: str | None = None,
        lease_s: float = LEASE_S,
    ) -> None:
        self.index = index
        self.config = config
        self.holder = holder or f"api-{holder_id()}"
        self.lease_s = lease_s
        self.turns = ChoreTurns(index, self.holder)
        self.published = 0
        self._task: Periodic | None = None
        self._reader: FeedReader | None = None  # while this process holds the lease
        self._renew_at = 0.0

    def start(self) -> None:
        config = self.config
        self._client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"xueliang-{self.holder}")
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
        self._task = Periodic("mqtt", ROUND_S, self.round)
        self._task.start()
        log.info("publishing events to MQTT at %s:%d", config.host, config.port)

    def stop(self) -> None:
        if self._task is None:
            return
        self._task.stop()
        self._task = None
        if self._reader is not None:
            self.turns.release(CHORE)  # the next process need not wait for the lease
        self._client.disconnect()
        self._client.loop_stop()

    def round(self) -> None:
        if time.monotonic() >= self._renew_at:
            self._renew_at = time.monotonic() + self.lease_s / 3
            if not self.turns.hold(CHORE, self.lease_s):
                self._reader = None  # another process publishes
                return
            if self._reader is None:  # just taken: on from where the last holder got
                self._reader = FeedReader(self.index, after=self.turns.position(CHORE))
                log.info("this process publishes events to MQTT now")
        if self._reader is None:
            return
        entries = self._reader.read()
        for entry in entries:
            event = entry.event
            if event is None:
                continue
            topic = f"{self.config.topic_prefix}/{event.site}/{event.camera_id}/{event.type}"
            body = {"change": entry.kind, "event": EventOut.of(event).model_dump(mode="json")}
            self._client.publish(topic, json.dumps(body), qos=self.config.qos)
            self.published += 1
        if entries:
            self.turns.record(CHORE, self._reader.cursor)
