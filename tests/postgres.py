"""A real PostgreSQL server (Debian's `postgresql`) for the tests and benchmarks.

`initdb` into a temporary folder, `pg_ctl start` on a free loopback port with the socket in
that folder too, so nothing touches a system cluster. initdb refuses to run as root, so as root
the server runs as the unprivileged `postgres` user (via `runuser`) and owns the folder.

Example (a test):
    def test_x(postgres: PostgresServer) -> None:
        url = postgres.create_database()   # a fresh, empty database per call

    def test_y(index: EventIndex) -> None:  # run once on SQLite, once on PostgreSQL
        ...
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from storage.database.index import EventIndex
from tests.servers import free_port

USER = "xueliang"
BACKENDS = ["sqlite", "postgresql"]
PASSWORD = "pg-test-secret"  # a test-only password, used to check that errors never show it


def postgres_bin() -> Path | None:
    """The folder of the newest installed PostgreSQL's server programs, if any."""
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3])
    )
    return Path(found[-1]).parent if found else None


class PostgresServer:
    """One throwaway PostgreSQL cluster; `url()` reaches it as a password-checked user."""

    def __init__(self, settings: dict[str, str] | None = None) -> None:
        self.bin = postgres_bin()
        if self.bin is None:
            raise RuntimeError("PostgreSQL is not installed: run scripts/setup")
        self.settings = settings or {}
        self.port = free_port()
        # Not under pytest's tmp_path: its parents are private to root and the server user
        # must reach its folder.
        self.root = Path(tempfile.mkdtemp(prefix="xueliang-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "server.log"
        self.databases = 0
        self._as_user: list[str] = []
        if os.geteuid() == 0:
            account = pwd.getpwnam("postgres")
            os.chown(self.root, account.pw_uid, account.pw_gid)
            self._as_user = ["runuser", "-u", "postgres", "--"]

    def _run(self, *command: str, timeout: float = 120) -> None:
        result = subprocess.run(
            [*self._as_user, *command], capture_output=True, text=True, timeout=timeout
        )
        if result.returncode != 0:
            log = self.log.read_text(errors="replace") if self.log.exists() else ""
            raise RuntimeError(f"{command[0]} failed: {result.stderr or result.stdout}\n{log}")

    def start(self) -> None:
        assert self.bin is not None
        password_file = self.root / "password"
        password_file.write_text(PASSWORD + "\n")
        if self._as_user:
            shutil.chown(password_file, "postgres", "postgres")
        self._run(
            str(self.bin / "initdb"),
            "-D",
            str(self.data),
            "-U",
            USER,
            f"--pwfile={password_file}",
            "--auth-host=scram-sha-256",  # TCP logins must give the password
            "--auth-local=trust",
            "--encoding=UTF8",
            "--locale=C",
        )
        password_file.unlink()
        options = {
            "listen_addresses": "127.0.0.1",
            "port": str(self.port),
            "unix_socket_directories": str(self.root),
            **self.settings,
        }
        with open(self.data / "postgresql.conf", "a") as conf:
            conf.writelines(f"{key} = '{value}'\n" for key, value in options.items())
        self._run(
            str(self.bin / "pg_ctl"), "-D", str(self.data), "-l", str(self.log), "-w", "start"
        )

    def stop(self) -> None:
        if self.bin is not None and (self.data / "postmaster.pid").exists():
            with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
                self._run(
                    str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop"
                )
        shutil.rmtree(self.root, ignore_errors=True)

    def url(self, database: str = "postgres", password: str = PASSWORD) -> str:
        return f"postgresql+psycopg://{USER}:{password}@127.0.0.1:{self.port}/{database}"

    def create_database(self) -> str:
        """A new empty database; its URL (with the password)."""
        import psycopg

        self.databases += 1
        name = f"test_{self.databases}"
        with psycopg.connect(
            host="127.0.0.1",
            port=self.port,
            user=USER,
            password=PASSWORD,
            dbname="postgres",
            autocommit=True,
        ) as connection:
            connection.execute(f"CREATE DATABASE {name}")  # name is ours: test_N
        return self.url(name)


@contextlib.contextmanager
def running_postgres(settings: dict[str, str] | None = None) -> Iterator[PostgresServer]:
    """A started server, stopped and deleted on exit."""
    server = PostgresServer(settings)
    try:
        server.start()
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """One server for the test session (fsync off: the tests never crash it)."""
    with running_postgres({"fsync": "off", "synchronous_commit": "off"}) as server:
        yield server


@pytest.fixture(params=BACKENDS)
def index_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database of each backend (PostgreSQL: a new database on the session server)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'index.db'}"
    server: PostgresServer = request.getfixturevalue("postgres")
    return server.create_database()


@pytest.fixture
def index(index_url: str) -> Iterator[EventIndex]:
    opened = EventIndex.connect(index_url)
    yield opened
    opened.close()
