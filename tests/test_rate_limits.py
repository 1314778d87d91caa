"""A key's request budget holds for the deployment: two API processes on one index grant it
once, not twice."""

from __future__ import annotations

import math
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from storage.database.accounts import ApiKeys
from storage.database.index import EventIndex
from storage.database.limits import SharedBuckets
from tests.servers import App, free_port

pytestmark = pytest.mark.integration

RATE_PER_S, BURST = 0.5, 10


class ApiProcess(App):
    """`xueliang api` alone, as the supervisor would start it, on its own port."""

    def __init__(self, workdir: Path, config: dict[str, object], name: str) -> None:
        port = free_port()
        super().__init__(workdir, port, f"{name}.log")
        self.config_path = workdir / f"{name}.yaml"
        api = {**config["api"], "port": port}  # type: ignore[dict-item]
        self.config_path.write_text(yaml.safe_dump({**config, "api": api}))

    def start(self) -> None:
        command = [sys.executable, "-m", "xueliang", "api", str(self.config_path)]
        self.launch(command, self.workdir, timeout=60)


@pytest.fixture
def two_apis(tmp_path: Path) -> Iterator[tuple[ApiProcess, ApiProcess, str]]:
    config: dict[str, object] = {
        "data_dir": str(tmp_path / "data"),
        "index": {"url": f"sqlite:///{tmp_path / 'index.db'}"},
        "storage": {"type": "embedded", "port": free_port()},  # not started: not needed here
        "api": {"rate_per_s": RATE_PER_S, "burst": BURST},
    }
    index = EventIndex.connect(str(config["index"]["url"]))  # type: ignore[index]
    _, key = ApiKeys(index).create("busy desk", "operator", [], all_sites=True, by="tests")
    apis = ApiProcess(tmp_path, config, "api-1"), ApiProcess(tmp_path, config, "api-2")
    try:
        for api in apis:
            api.key = key
            api.start()
        yield apis[0], apis[1], key
    finally:
        for api in apis:
            api.stop()


def test_two_api_processes_grant_a_key_its_budget_once(
    two_apis: tuple[ApiProcess, ApiProcess, str],
) -> None:
    first, second, key = two_apis
    headers = {"Authorization": f"Bearer {key}"}
    answers: Counter[tuple[int, int]] = Counter()
    retry_after = set()
    started = time.monotonic()
    for turn in range(4 * BURST):
        api = (first, second)[turn % 2]
        answer = httpx.get(f"{api.api}/api/me", headers=headers, timeout=10)
        answers[(turn % 2, answer.status_code)] += 1
        if answer.status_code == 429:
            retry_after.add(answer.headers["Retry-After"])
    elapsed = time.monotonic() - started
    granted = answers[(0, 200)] + answers[(1, 200)]
    assert set(answers) <= {(0, 200), (1, 200), (0, 429), (1, 429)}, answers
    # One bucket: the burst and what refilled meanwhile, whichever process was asked.
    assert BURST <= granted <= BURST + math.floor(RATE_PER_S * elapsed), (answers, elapsed)
    assert answers[(0, 200)] and answers[(1, 200)] and answers[(0, 429)] and answers[(1, 429)]
    assert retry_after and all(int(value) >= 1 for value in retry_after)
    # Another key has its own budget.
    index = EventIndex.connect(f"sqlite:///{first.workdir / 'index.db'}")
    _, other = ApiKeys(index).create("quiet desk", "operator", [], all_sites=True, by="tests")
    mine = {"Authorization": f"Bearer {other}"}
    assert httpx.get(f"{second.api}/api/me", headers=mine, timeout=10).status_code == 200


def test_racing_processes_never_take_the_same_token(tmp_path: Path) -> None:
    """Threads with their own connections take from one bucket at one instant: the burst is
    handed out exactly once (conditional updates; a loser reads again)."""
    from concurrent.futures import ThreadPoolExecutor

    url = f"sqlite:///{tmp_path / 'index.db'}"
    EventIndex.connect(url)
    buckets = [SharedBuckets(EventIndex.connect(url), RATE_PER_S, BURST) for _ in range(4)]
    with ThreadPoolExecutor(4) as pool:
        taken = list(
            pool.map(lambda b: sum(b.take("k", 1, now=100.0)[0] for _ in range(5)), buckets)
        )
    assert sum(taken) == BURST
