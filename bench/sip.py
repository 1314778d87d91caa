"""What the GB/T 28181 signalling service costs per registration and per keepalive, against SIPp
answering the same keepalives, one JSON line.

`xueliang sip` runs as its own process on a SQLite index in a temporary folder. `--devices`
simulated devices register (each REGISTER challenged, then answered with an MD5 digest), then
send `--rounds` keepalive MESSAGEs each, `--window` requests in flight at a time over UDP. The
service's CPU seconds (user + sys of its process) give `registrations_per_cpu_s` and
`keepalives_per_cpu_s`; `devices_at_60s_per_core` is how many devices keeping alive every 60 s
one core serves (goal: 10,000). The native tool is SIPp as a UAS answering each MESSAGE with
200 OK (a scenario that only answers, no database): the same keepalives, its CPU per message
(`native_keepalives_per_cpu_s`); `ratio` = ours / native.

Usage: .venv/bin/python bench/sip.py [--devices 1000] [--rounds 5] [--smoke]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import secrets
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
from smoke import parse_arguments

PLATFORM, DOMAIN, PASSWORD = "34020000002000000001", "3402000000", "12345678"
SIPP_UAS = """<?xml version="1.0" encoding="UTF-8" ?>
<scenario name="answer MESSAGE">
  <recv request="MESSAGE"/>
  <send><![CDATA[
SIP/2.0 200 OK
[last_Via:]
[last_From:]
[last_To:];tag=[pid]
[last_Call-ID:]
[last_CSeq:]
Content-Length: 0

]]></send>
</scenario>
"""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def message(method: str, device: str, port: int, headers: list[str], body: str = "") -> bytes:
    to = device if method == "REGISTER" else PLATFORM
    lines = [
        f"{method} sip:{PLATFORM}@{DOMAIN} SIP/2.0",
        f"Via: SIP/2.0/UDP 127.0.0.1:{port};rport;branch=z9hG4bK{secrets.token_hex(6)}",
        f"From: <sip:{device}@{DOMAIN}>;tag=1", f"To: <sip:{to}@{DOMAIN}>",
        f"Call-ID: {secrets.token_hex(8)}", f"CSeq: 1 {method}", *headers,
        f"Content-Length: {len(body)}", "", body,
    ]  # fmt: skip
    return "\r\n".join(lines).encode()


def authorized(challenge: bytes, device: str, port: int) -> bytes:
    params = dict(
        re.findall(r'(\w+)="?([^",\r]+)"?', challenge.decode().split("WWW-Authenticate:")[1])
    )
    uri = f"sip:{PLATFORM}@{DOMAIN}"

    def md5(text: str) -> str:
        return hashlib.md5(text.encode()).hexdigest()

    ha1, ha2 = md5(f"{device}:{params['realm']}:{PASSWORD}"), md5(f"REGISTER:{uri}")
    response = md5(f"{ha1}:{params['nonce']}:00000001:c1:auth:{ha2}")
    header = (f'Authorization: Digest username="{device}", realm="{params["realm"]}", '
              f'nonce="{params["nonce"]}", uri="{uri}", response="{response}", '
              'algorithm=MD5, qop=auth, nc=00000001, cnonce="c1"')  # fmt: skip
    return message("REGISTER", device, port, [header, "Expires: 3600"])


def keepalive(device: str, port: int) -> bytes:
    body = (f'<?xml version="1.0" encoding="GB2312"?><Notify><CmdType>Keepalive</CmdType><SN>1</SN>'
            f"<DeviceID>{device}</DeviceID><Status>OK</Status></Notify>")  # fmt: skip
    return message("MESSAGE", device, port, ["Content-Type: Application/MANSCDP+xml"], body)


def pumped(
    sock: socket.socket, target: tuple[str, int], requests: Iterator[bytes], window: int
) -> int:
    """Send `requests`, at most `window` unanswered at once; the answers received."""
    answered, in_flight = 0, 0
    pending = list(requests)
    while pending or in_flight:
        while pending and in_flight < window:
            sock.sendto(pending.pop(), target)
            in_flight += 1
        try:
            sock.recv(65535)
            answered += 1
        except TimeoutError:
            pass  # lost on a loaded machine: carry on
        in_flight -= 1
    return answered


def cpu(process: psutil.Process) -> float:
    times = process.cpu_times()
    return float(times.user + times.system)


def wait_listening(port: int) -> None:
    deadline = time.monotonic() + 30
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(0.5)
        while time.monotonic() < deadline:
            sock.sendto(message("OPTIONS", "34020000001320000001", 0, []), ("127.0.0.1", port))
            try:
                sock.recv(4096)
                return
            except TimeoutError:
                continue
    raise TimeoutError("the SIP service did not answer")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--devices", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=5, help="keepalives per device")
    parser.add_argument("--window", type=int, default=32, help="requests in flight")
    arguments = parse_arguments(parser, devices=20, rounds=2)
    repo = Path(__file__).resolve().parent.parent
    with tempfile.TemporaryDirectory(prefix="bench-sip-") as scratch:
        work = Path(scratch)
        port = free_port()
        config = work / "config.yaml"
        config.write_text(json.dumps({
            "data_dir": str(work / "data"), "index": {"url": f"sqlite:///{work / 'index.db'}"},
            # All the devices are one address here: no per-address limit.
            "gb28181": {"enabled": True, "host": "127.0.0.1", "port": port, "password": PASSWORD,
                        "keepalive_s": 3600, "source_rate_per_s": 1e9, "source_burst": 10**9},
        }))  # fmt: skip
        environment = {**os.environ, "PYTHONPATH": str(repo)}
        command = [sys.executable, "-m", "xueliang", "sip", str(config)]
        service = subprocess.Popen(command, cwd=work, env=environment, stderr=subprocess.DEVNULL)
        try:
            wait_listening(port)
            process = psutil.Process(service.pid)
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
                sock.bind(("127.0.0.1", 0))
                sock.settimeout(2.0)
                own = sock.getsockname()[1]
                target = ("127.0.0.1", port)
                devices = [f"340200000013200{n:05d}" for n in range(arguments.devices)]
                started = cpu(process)
                for device in devices:  # challenge and answer: one device at a time
                    sock.sendto(message("REGISTER", device, own, ["Expires: 3600"]), target)
                    sock.sendto(authorized(sock.recv(65535), device, own), target)
                    assert sock.recv(65535).startswith(b"SIP/2.0 200"), device
                registering = cpu(process) - started
                started = cpu(process)
                sent = len(devices) * arguments.rounds
                keepalives = (keepalive(d, own) for _ in range(arguments.rounds) for d in devices)
                answered = pumped(sock, target, keepalives, arguments.window)
                keeping = cpu(process) - started
        finally:
            service.terminate()
            service.wait(15)
        scenario = work / "uas.xml"
        scenario.write_text(SIPP_UAS)
        native_port = free_port()
        sipp = subprocess.Popen(
            ["sipp", "-sf", str(scenario), "-i", "127.0.0.1", "-p", str(native_port), "-nostdin",
             "-m", str(sent)],
            cwd=work, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        time.sleep(1.0)
        native_process = psutil.Process(sipp.pid)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.bind(("127.0.0.1", 0))
            sock.settimeout(2.0)
            own = sock.getsockname()[1]
            started = cpu(native_process)
            keepalives = (keepalive(d, own) for _ in range(arguments.rounds) for d in devices)
            native_answered = pumped(sock, ("127.0.0.1", native_port), keepalives, arguments.window)
            native = cpu(native_process) - started
        sipp.terminate()
        sipp.wait(15)
    ours_per_s = answered / max(keeping, 1e-6)
    native_per_s = native_answered / max(native, 1e-6)
    print(json.dumps({
        "devices": arguments.devices,
        "registrations_per_cpu_s": round(len(devices) / max(registering, 1e-6), 1),
        "keepalives_per_cpu_s": round(ours_per_s, 1),
        "devices_at_60s_per_core": round(ours_per_s * 60),
        "native_keepalives_per_cpu_s": round(native_per_s, 1),
        "ratio": round(ours_per_s / native_per_s, 3),
        "answered": answered, "sent": sent, "native_answered": native_answered,
        "cpus": os.cpu_count(), "at": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }))  # fmt: skip


if __name__ == "__main__":
    main()
