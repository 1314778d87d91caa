"""The console in Debian's Chromium (headless, driven by Playwright) against the served API:
an operator logs in, a live event appears without a reload, its clip plays, it is
acknowledged; a shop key cannot open the operator's pages. Screenshots go to test-artifacts/."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import httpx
import numpy as np
import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from api.config import ApiConfig
from common.types import Event
from storage.accounts import ApiKeys, SiteRow
from storage.cameras import ApiCameras, NetworkCameraConfig
from storage.index import CameraPictureRow, CameraStatusRow, EventIndex, to_datetime, utcnow
from storage.objects import ObjectStore, object_key
from tests.apiclient import Served
from tests.servers import CHECKOUT

pytestmark = pytest.mark.integration
CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = CHECKOUT / "test-artifacts"
# Chromium's own calls home are refused on a closed network, many at a time: switched off.
QUIET = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-sync",
    "--disable-background-networking", "--disable-component-update",
    "--autoplay-policy=no-user-gesture-required",
]  # fmt: skip
# Text that does not fit its box (cut off), or boxes of a card that lie on one another.
LAYOUT_PROBLEMS = """() => {
  const problems = [];
  const boxes = document.querySelectorAll(
    ".title, .meta, .status, button, nav a, .who, .brand, h1, h2, h3, th, td, label, p");
  for (const box of boxes) {
    if (!box.offsetParent) continue;
    if (box.scrollWidth > box.clientWidth + 1 || box.scrollHeight > box.clientHeight + 1)
      problems.push(`clipped: ${box.className || box.tagName} "${box.textContent.slice(0, 40)}"`);
  }
  for (const line of document.querySelectorAll(".title, .meta")) {  // squeezed to a column
    const rect = line.getBoundingClientRect();
    const lineHeight = parseFloat(getComputedStyle(line).lineHeight) || 20;
    if (line.offsetParent && rect.width < 150 && rect.height > 2.5 * lineHeight)
      problems.push(`squeezed: "${line.textContent.slice(0, 40)}"`);
  }
  for (const parent of document.querySelectorAll(".event, .bar")) {
    const parts = [...parent.querySelectorAll(".title, .meta, .status, button, input, a, .who")]
      .filter((p) => p.offsetParent).map((p) => [p, p.getBoundingClientRect()]);
    for (let i = 0; i < parts.length; i++) for (let j = i + 1; j < parts.length; j++) {
      const [a, ra] = parts[i], [b, rb] = parts[j];
      if (a.contains(b) || b.contains(a)) continue;
      const across = ra.left < rb.right - 1 && rb.left < ra.right - 1;
      if (across && ra.top < rb.bottom - 1 && rb.top < ra.bottom - 1)
        problems.push(`overlap: "${a.textContent.slice(0, 20)}" / "${b.textContent.slice(0, 20)}"`);
    }
  }
  return problems;
}"""


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not Path(CHROMIUM).exists():
        pytest.fail("Debian's chromium is missing: run scripts/setup")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=QUIET)
        yield launched
        launched.close()


@pytest.fixture
def console(tmp_path: Path, object_store: ObjectStore) -> Iterator[tuple[Served, EventIndex]]:
    index = EventIndex.connect(f"sqlite:///{tmp_path / 'index.db'}")
    with index.sessions.begin() as session:
        session.add(SiteRow(id="hq", name="总部", timezone="Asia/Shanghai"))
    ApiCameras(index).put(NetworkCameraConfig(id="gate", site="hq", url="rtsp://10.0.0.5/gate"))
    index.put_camera_status(
        CameraStatusRow(camera_id="gate", site="hq", state="online", decode_fps=5.0,
                        updated_at=utcnow())
    )  # fmt: skip
    index.put_camera_picture(
        CameraPictureRow(camera_id="gate", site="hq", jpeg=jpeg(), taken_at=utcnow())
    )
    with Served(index, ApiConfig(), heartbeat_stale_s=30, store=object_store) as served:
        yield served, index


def stored_event(index: EventIndex, store: ObjectStore, clip: bytes) -> Event:
    now = time.time()
    event = Event("gate", "hq", "zone_intrusion", "person", "东门", "high", now, now)
    event.ended_at = now
    index.add_event(event)
    media = {}
    for name, data, kind in (("mp4", clip, "video/mp4"), ("jpg", jpeg(), "image/jpeg")):
        key = object_key("hq", "gate", now, f"{event.id}.{name}")
        media[name] = (key, store.put(key, data, kind, {"event-id": event.id}).sha256)
    index.finish_event(
        event, state="ended", ended_at=to_datetime(now),
        clip_key=media["mp4"][0], clip_sha256=media["mp4"][1],
        snapshot_key=media["jpg"][0], snapshot_sha256=media["jpg"][1],
    )  # fmt: skip
    return event


def jpeg() -> bytes:
    ok, data = cv2.imencode(".jpg", np.full((120, 160, 3), 90, np.uint8))
    assert ok
    return bytes(data.tobytes())


def log_in(page: Page, served: Served, key: str) -> None:
    page.goto(f"http://127.0.0.1:{served.port}/")
    page.fill("input[name=key]", key)
    page.click("form#login button[type=submit]")


def shot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    size = page.viewport_size or {"width": 0, "height": 0}
    page.screenshot(path=str(ARTIFACTS / f"{name}-{size['width']}x{size['height']}.png"))


def test_an_operator_sees_a_live_event_plays_its_clip_and_acknowledges_it(
    browser: Browser,
    console: tuple[Served, EventIndex],
    object_store: ObjectStore,
    vtest_h264: Path,
) -> None:
    served, index = console
    _, key = ApiKeys(index).create("值班员 1", "operator", [], True, by="tests")
    for width, height in ((1366, 768), (1920, 1080)):
        page = browser.new_page(viewport={"width": width, "height": height})
        log_in(page, served, key)
        page.wait_for_selector("#wall")
        event = stored_event(index, object_store, vtest_h264.read_bytes())
        card = page.wait_for_selector(f'[data-event="{event.id}"]', timeout=10_000)
        assert card is not None and "区域入侵" in card.inner_text()  # the type, in Chinese
        assert "高" in card.inner_text()  # and its severity
        assert page.evaluate(LAYOUT_PROBLEMS) == []
        shot(page, "wall")
        page.select_option("#filters select[name=status]", "resolved")  # none resolved yet
        page.wait_for_selector(f'[data-event="{event.id}"]', state="detached")
        page.select_option("#filters select[name=status]", "")
        page.select_option("#filters select[name=type]", "zone_intrusion")
        page.wait_for_selector(f'[data-event="{event.id}"]')

        page.click(f'[data-event="{event.id}"] .title')  # re-drawn as its media arrived
        page.wait_for_selector("video#clip")
        playing: Any = page.evaluate(
            """async () => {
              const video = document.getElementById("clip");
              video.muted = true;
              await video.play();
              const start = video.currentTime;
              await new Promise((done) => setTimeout(done, 1500));
              return {ready: video.readyState, advanced: video.currentTime - start};
            }"""
        )
        assert playing["ready"] >= 2 and playing["advanced"] > 0.5, playing
        assert page.evaluate(LAYOUT_PROBLEMS) == []
        shot(page, "event")

        with page.expect_response(lambda r: r.url.endswith("/actions") and r.ok):
            page.click('.detail [data-action="acknowledge"]')

        page.click('nav a[href="#/cameras"]')  # the camera grid
        badge = page.wait_for_selector('[data-camera="gate"] .badge')
        assert badge is not None and badge.inner_text() == "在线"
        page.wait_for_function(
            "document.querySelector('[data-camera=\"gate\"] img')?.naturalWidth > 0"
        )
        assert page.evaluate(LAYOUT_PROBLEMS) == []
        shot(page, "cameras")
        row = httpx.get(
            f"http://127.0.0.1:{served.port}/api/events/{event.id}",
            headers={"Authorization": f"Bearer {key}"},
        ).json()
        assert row["status"] == "acknowledged" and row["acknowledged_by"] == "值班员 1"
        page.close()


def test_a_shop_key_cannot_open_the_operator_pages(
    browser: Browser, console: tuple[Served, EventIndex]
) -> None:
    served, index = console
    _, key = ApiKeys(index).create("shop 7", "shop", ["hq"], False, by="tests")
    page = browser.new_page(viewport={"width": 1366, "height": 768})
    log_in(page, served, key)
    page.wait_for_selector("#forbidden")
    assert page.query_selector("#wall") is None
    assert "无权访问" in page.inner_text("#forbidden")
    shot(page, "forbidden")
    page.click("#language")
    page.wait_for_selector("#forbidden")
    assert "may not open" in page.inner_text("#forbidden")  # English, on request
    page.close()
