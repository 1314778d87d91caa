"""A real RTMP and HLS server for the tests: Debian's nginx with libnginx-mod-rtmp.

ffmpeg publishes MP4 files to it over RTMP in a loop, as a camera or an encoder would; nginx
serves each stream back over RTMP and, cut into MPEG-TS segments, over HLS.
"""

from __future__ import annotations

import contextlib
import glob
import os
import re
import signal
import socket
import subprocess
import time
from pathlib import Path

import httpx

from tests.servers import free_port

NGINX = "nginx"
FFMPEG = "ffmpeg"
# Where Debian's libnginx-mod-rtmp puts the module, and the snippet that loads it.
MODULE_DIRS = ("/usr/lib/nginx/modules", "/usr/share/nginx/modules")
MODULE_SNIPPETS = "/usr/share/nginx/modules-available/*.conf"
MODULE_NAME = "ngx_rtmp_module.so"
NGINX_PREFIX = Path("/usr/share/nginx")  # Debian's --prefix: relative load_module paths


def rtmp_module_path() -> Path:
    """The rtmp dynamic module installed by Debian's libnginx-mod-rtmp."""
    for directory in MODULE_DIRS:
        candidate = Path(directory) / MODULE_NAME
        if candidate.is_file():
            return candidate
    for snippet in sorted(glob.glob(MODULE_SNIPPETS)):
        match = re.search(r"load_module\s+(\S*rtmp\S*\.so)\s*;", Path(snippet).read_text())
        if match:
            candidate = NGINX_PREFIX / match.group(1)
            if candidate.is_file():
                return candidate.resolve()
    raise FileNotFoundError(f"{MODULE_NAME} not found: install nginx and libnginx-mod-rtmp")


class NginxRtmp:
    """nginx with the rtmp module, everything (config, pid, logs, temp, HLS) inside `workdir`.

    Run as `nginx -p DIR -c DIR/nginx.conf -g 'daemon off;'` on free loopback ports; the
    `live` application takes RTMP publishes and writes HLS into DIR/hls, served at /hls/.
    """

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.rtmp_port = free_port()
        self.http_port = free_port()
        self.hls_dir = workdir / "hls"
        self.config_path = workdir / "nginx.conf"
        self.log_path = workdir / "nginx.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.publishers: dict[str, subprocess.Popen[bytes]] = {}
        self.ready_token = f"nginx-rtmp-{os.getpid()}-{id(self)}"

    def rtmp_url(self, name: str) -> str:
        return f"rtmp://127.0.0.1:{self.rtmp_port}/live/{name}"

    def hls_url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.http_port}/hls/{name}.m3u8"

    @property
    def files_dir(self) -> Path:
        """Files here are served over plain HTTP at `file_url(name)`."""
        return self.workdir / "files"

    def file_url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.http_port}/files/{name}"

    def config(self) -> str:
        root = self.workdir
        # As root the master switches its workers to `user`; keep them as whoever runs us so
        # they can write into the test's private temp directory.
        user = "user root root;" if os.geteuid() == 0 else ""
        temp = "\n".join(
            f"    {kind}_temp_path {root / 'temp' / kind};"
            for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
        )
        return f"""\
load_module {rtmp_module_path()};
{user}
worker_processes 1;
pid {root / "nginx.pid"};
lock_file {root / "nginx.lock"};
error_log {self.log_path} warn;

events {{
    worker_connections 256;
}}

rtmp {{
    server {{
        listen 127.0.0.1:{self.rtmp_port};
        chunk_size 4096;
        application live {{
            live on;
            record off;
            hls on;
            hls_path {self.hls_dir};
            hls_fragment 1s;
            hls_playlist_length 6s;
        }}
    }}
}}

http {{
    access_log off;
{temp}
    server {{
        listen 127.0.0.1:{self.http_port};
        location = /ready {{
            return 200 "{self.ready_token}";
        }}
        location /files/ {{
            alias {self.workdir}/files/;
            types {{
                video/x-flv flv;
            }}
        }}
        location /hls/ {{
            alias {self.hls_dir}/;
            types {{
                application/vnd.apple.mpegurl m3u8;
                video/mp2t ts;
            }}
            add_header Cache-Control no-cache;
            log_not_found off;  # the playlist 404s until the first segment is cut
        }}
    }}
}}
"""

    def start(self, timeout: float = 15.0) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.files_dir.mkdir(exist_ok=True)
        self.hls_dir.mkdir(exist_ok=True)
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"):
            (self.workdir / "temp" / kind).mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(self.config())
        command = [
            NGINX,
            "-p",
            f"{self.workdir}/",
            "-c",
            str(self.config_path),
            "-e",
            str(self.log_path),
            "-g",
            "daemon off;",
        ]
        with open(self.workdir / "nginx.stderr", "ab") as stderr:
            self.process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=stderr,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own group, so a failed stop can kill the workers
            )
        # A port accepts as soon as it is bound, even while nginx is still retrying to bind
        # another one before giving up; an answer from our own HTTP server means it is up.
        deadline = time.monotonic() + timeout
        waiting = [self.rtmp_port, self.http_port]
        while waiting or not self._answers():
            if self.process.poll() is not None:
                log = self.logs()
                self.stop()
                raise RuntimeError(f"nginx exited with {self.process.returncode}:\n{log}")
            if time.monotonic() > deadline:
                log = self.logs()
                self.stop()
                raise TimeoutError(f"nginx not up on {waiting or 'HTTP'} in {timeout}s:\n{log}")
            waiting = [port for port in waiting if not _accepts(port)]
            time.sleep(0.05)

    def _answers(self) -> bool:
        with contextlib.suppress(httpx.HTTPError):
            answer = httpx.get(f"http://127.0.0.1:{self.http_port}/ready", timeout=1)
            return answer.status_code == 200 and answer.text == self.ready_token
        return False

    def publish(self, name: str, mp4: Path) -> None:
        """Push `mp4` in a loop, in real time and without re-encoding, as stream `name`."""
        assert self.process is not None, "start() first"
        command = [
            FFMPEG,
            "-nostdin",
            "-hide_banner",
            "-loglevel",
            "error",
            "-re",
            "-stream_loop",
            "-1",
            "-i",
            str(mp4),
            "-c",
            "copy",
            "-f",
            "flv",
            self.rtmp_url(name),
        ]
        with open(self.workdir / f"ffmpeg-{name}.log", "ab") as log:
            self.publishers[name] = subprocess.Popen(
                command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT
            )

    def segments(self, name: str) -> list[str]:
        """The segment URIs the HLS playlist of `name` lists now (empty when there is none)."""
        with contextlib.suppress(httpx.HTTPError):
            answer = httpx.get(self.hls_url(name), timeout=2)
            if answer.status_code == 200:
                lines = (line.strip() for line in answer.text.splitlines())
                return [line for line in lines if line and not line.startswith("#")]
        return []

    def wait_hls(self, name: str, timeout: float = 30.0) -> list[str]:
        """Wait until the playlist of `name` exists and lists at least two segments."""
        deadline = time.monotonic() + timeout
        while True:
            self._check_alive(name)
            found = self.segments(name)
            if len(found) >= 2:
                return found
            if time.monotonic() > deadline:
                raise TimeoutError(f"no HLS playlist with 2 segments in {timeout}s:\n{self.logs()}")
            time.sleep(0.2)

    def _check_alive(self, name: str) -> None:
        if self.process is None or self.process.poll() is not None:
            raise RuntimeError(f"nginx is not running:\n{self.logs()}")
        publisher = self.publishers.get(name)
        if publisher is not None and publisher.poll() is not None:
            raise RuntimeError(f"ffmpeg publishing {name!r} exited:\n{self.logs()}")

    def logs(self) -> str:
        parts: list[str] = []
        for path in [*sorted(self.workdir.glob("*.log")), self.workdir / "nginx.stderr"]:
            if path.exists() and path.stat().st_size:
                parts.append(f"--- {path.name}\n{path.read_text(errors='replace')[-4000:]}")
        return "\n".join(parts)

    def stop(self) -> None:
        """Stop the publishers, then nginx (graceful, then fast, then kill): no process stays."""
        for publisher in self.publishers.values():
            _terminate(publisher, signal.SIGTERM, 5.0)
        self.publishers.clear()
        if self.process is None or self.process.poll() is not None:
            return
        for sig, wait in ((signal.SIGQUIT, 5.0), (signal.SIGTERM, 5.0)):
            self.process.send_signal(sig)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(wait)
                return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()


def _accepts(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _terminate(process: subprocess.Popen[bytes], sig: signal.Signals, wait: float) -> None:
    if process.poll() is not None:
        return
    process.send_signal(sig)
    try:
        process.wait(wait)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
