"""Clients of the API for tests: a TestClient holding a key of the role and sites a test asks
for, the API served by uvicorn for clients that need a real server, and a webhook receiver."""

from __future__ import annotations

import hashlib
import hmac
import threading
import time
from collections.abc import Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import uvicorn
from cryptography.fernet import Fernet
from fastapi import FastAPI
from fastapi.testclient import TestClient
from minio import Minio
from websockets.sync.client import ClientConnection, connect

from api.app import create_app
from api.config import ApiConfig, EgressConfig
from api.webhooks import SIGNATURE_HEADER
from storage.database.accounts import ApiKeys, Role
from storage.database.index import EventIndex
from storage.database.sealing import CredentialSealer
from storage.media.objects import ObjectStore
from tests.servers import free_port

# The tests' cameras and webhook receivers listen on 127.0.0.1: keys of every role may reach
# them there, and nowhere else on loopback (127.0.0.2 and on stay refused).
LOCAL_PEERS = EgressConfig(allow=["127.0.0.1/32"])

# Seals the credentials of cameras the tests store, in the API under test and around it.
SEALER = CredentialSealer([Fernet.generate_key()])


def make_key(index: EventIndex, role: Role = "admin", sites: Sequence[str] = ()) -> str:
    """A new key of `role` for `sites` (every site when none are given: admin, operator)."""
    _, key = ApiKeys(index).create(f"{role} of tests", role, sites, not sites, by="tests")
    return key


def api_client(
    app: FastAPI, index: EventIndex, role: Role = "admin", sites: Sequence[str] = ()
) -> TestClient:
    """A TestClient (use it in a `with`) that sends a new key of `role` with every request."""
    key = make_key(index, role, sites)
    return TestClient(app, headers={"Authorization": f"Bearer {key}"})


class Served:
    """The API under uvicorn on a free loopback port, in a thread (its live hub and webhook
    dispatcher running); `ws` opens a live WebSocket. Without a store, every object request
    fails at the network."""

    def __init__(
        self,
        index: EventIndex,
        settings: ApiConfig,
        heartbeat_stale_s: float,
        store: ObjectStore | None = None,
    ) -> None:
        unreachable = Minio(f"127.0.0.1:{free_port()}", "k", "s", secure=False)
        store = store or ObjectStore(unreachable, "unused")
        app = create_app(index, store, [], settings, heartbeat_stale_s, SEALER)
        self.port = free_port()
        config = uvicorn.Config(
            app, host="127.0.0.1", port=self.port, log_config=None, timeout_graceful_shutdown=2
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> Served:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            assert time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.05)
        return self

    def __exit__(self, *_: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)

    def ws(self, key: str | None, query: str = "") -> ClientConnection:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        url = f"ws://127.0.0.1:{self.port}/api/live/ws{query}"
        return connect(url, additional_headers=headers, open_timeout=5)


class Receiver:
    """An HTTP server on `host` that answers `failures` 500s first, then 200s (or a 307 to
    `redirect_to` each time), and keeps every request's headers and body."""

    def __init__(
        self,
        failures: int = 0,
        port: int | None = None,
        host: str = "127.0.0.1",
        redirect_to: str | None = None,
    ) -> None:
        self.failures = failures
        self.requests: list[tuple[dict[str, str], bytes]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.requests.append((dict(self.headers.items()), body))
                failing = len(receiver.requests) <= receiver.failures
                if redirect_to is not None:
                    self.send_response(307)
                    self.send_header("Location", redirect_to)
                else:
                    self.send_response(500 if failing else 200)
                self.end_headers()

            def log_message(self, *_: Any) -> None:
                pass

        self.server = ThreadingHTTPServer((host, port or free_port()), Handler)
        self.url = f"http://{host}:{self.server.server_port}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def verified(secret: str, headers: dict[str, str], body: bytes) -> bool:
    """What a receiver does: recompute the HMAC over "t." + body and check the time."""
    fields = dict(part.split("=", 1) for part in headers[SIGNATURE_HEADER].split(","))
    mac = hmac.new(secret.encode(), f"{fields['t']}.".encode() + body, hashlib.sha256)
    fresh = abs(time.time() - int(fields["t"])) < 60
    return fresh and hmac.compare_digest(mac.hexdigest(), fields["v1"])
