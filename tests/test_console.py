"""The console in Debian's Chromium (headless, driven by Playwright) against the running app
as `xueliang demo` starts it (its demo camera, workers, S3 and API): an operator sees a live
event without a reload, plays its clip and acknowledges it; an installer adds a camera after
probing it, draws a zone and the workers apply it; a shop key cannot open the operator's pages.
Screenshots of every view at both screen sizes go to test-artifacts/."""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import zipfile
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import psutil
import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from tests.servers import CHECKOUT, Demo

pytestmark = pytest.mark.integration
SIZES = ((1366, 768), (1920, 1080))
MINUTE = "%Y-%m-%dT%H:%M"  # a datetime-local input's value
# The west end of the demo's walkway, where walkers cross (fractions of the picture).
WEST_WALKWAY = [(0.01, 0.3), (0.3, 0.3), (0.3, 0.6), (0.01, 0.55)]
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
# Marks each shown element whose own text holds Chinese, so that CDP can name it; their texts.
MARK_CHINESE = """() => {
  const texts = [];
  for (const element of document.body.querySelectorAll("*")) {
    const own = [...element.childNodes].filter((n) => n.nodeType === Node.TEXT_NODE)
      .map((n) => n.textContent).join("").trim();
    if (!/[\\u3400-\\u9fff]/.test(own) || element.getClientRects().length === 0) continue;
    element.setAttribute("data-chinese", texts.length);
    texts.push(own.slice(0, 40));
  }
  return texts;
}"""


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not Path(CHROMIUM).exists():
        pytest.fail("Debian's chromium is missing: run scripts/setup")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=QUIET)
        yield launched
        launched.close()


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    """The running app as `xueliang demo` starts it: its demo camera, workers, S3, API."""
    app = Demo(tmp_path_factory.mktemp("console"))
    app.start()
    yield app
    app.stop()


def new_key(demo: Demo, name: str, role: str, sites: list[str], all_sites: bool = False) -> str:
    body = {"name": name, "role": role, "sites": sites, "all_sites": all_sites}
    made = httpx.post(f"{demo.api}/api/keys", json=body, headers=demo.headers, timeout=10)
    assert made.status_code == 201, made.text
    return str(made.json()["key"])


def add_site(demo: Demo, site: str, name: str, **place: Any) -> None:
    body = {"name": name, "timezone": "Asia/Shanghai", **place}
    made = httpx.put(f"{demo.api}/api/sites/{site}", json=body, headers=demo.headers, timeout=10)
    assert made.is_success, made.text


def log_in(page: Page, demo: Demo, key: str) -> None:
    page.goto(f"{demo.api}/")
    page.fill("input[name=key]", key)
    page.click("form#login button[type=submit]")


def shot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    size = page.viewport_size or {"width": 0, "height": 0}
    path = ARTIFACTS / f"{name}-{size['width']}x{size['height']}.png"
    page.screenshot(path=str(path), full_page=True)


@functools.cache
def chinese_families() -> frozenset[str]:
    """The font families on this machine that have Chinese glyphs, as fontconfig knows them."""
    listed = subprocess.run(
        ["fc-list", ":lang=zh-cn", "family"], capture_output=True, text=True, check=True
    )
    return frozenset(name for line in listed.stdout.splitlines() for name in line.split(","))


def tofu(page: Page) -> list[str]:
    """The Chinese texts of the page that the browser drew without a font that has Chinese
    glyphs (as empty boxes), with the fonts it used: the platform fonts of each text, from
    the browser itself (CDP's CSS.getPlatformFontsForNode)."""
    texts = page.evaluate(MARK_CHINESE)
    devtools = page.context.new_cdp_session(page)
    try:
        devtools.send("DOM.enable")
        devtools.send("CSS.enable")
        root = devtools.send("DOM.getDocument")["root"]["nodeId"]
        found = devtools.send(
            "DOM.querySelectorAll", {"nodeId": root, "selector": "[data-chinese]"}
        )
        problems = []
        for node in found["nodeIds"]:
            attributes = devtools.send("DOM.getAttributes", {"nodeId": node})["attributes"]
            text = texts[int(attributes[attributes.index("data-chinese") + 1])]
            fonts = devtools.send("CSS.getPlatformFontsForNode", {"nodeId": node})["fonts"]
            families = sorted({font["familyName"] for font in fonts})
            if not chinese_families() & set(families):
                problems.append(f"{text!r} drawn in {', '.join(families) or 'no font'}")
    finally:
        devtools.detach()
        page.evaluate("document.querySelectorAll('[data-chinese]')"
                      ".forEach((e) => e.removeAttribute('data-chinese'))")  # fmt: skip
    return problems


def check_layout(page: Page, name: str) -> None:
    """The view at each screen size: nothing clipped or overlapping, no Chinese drawn as empty
    boxes (the layout would be measured on the wrong glyphs; English views show Chinese names
    of sites and people too); a screenshot of each."""
    name = f"{name}-{page.evaluate('document.documentElement.lang')}"
    assert tofu(page) == [], f"{name}: Chinese without a Chinese font (fonts-noto-cjk?)"
    for width, height in SIZES:
        page.set_viewport_size({"width": width, "height": height})
        page.wait_for_timeout(200)  # a layout pass
        assert page.evaluate(LAYOUT_PROBLEMS) == [], f"{name} at {width}x{height}"
        shot(page, name)
    page.set_viewport_size({"width": SIZES[0][0], "height": SIZES[0][1]})


PAGE_ERRORS: dict[int, list[str]] = {}  # uncaught script errors, by page


def open_page(browser: Browser, english: bool = False) -> Page:
    """A page in a browser far from the sites (whose times are Shanghai's), in Chinese (the
    default) or with English chosen before (its longer words get the same layout checks)."""
    width, height = SIZES[0]
    page = browser.new_page(
        viewport={"width": width, "height": height}, timezone_id="America/New_York"
    )
    if english:
        page.add_init_script("localStorage.setItem('language', 'en')")
    errors = PAGE_ERRORS.setdefault(id(page), [])
    page.on("pageerror", lambda error: errors.append(str(error)))
    return page


def close_page(page: Page) -> None:
    """Close the page; the console must have thrown no uncaught error on it meanwhile."""
    page.close()
    assert PAGE_ERRORS.pop(id(page)) == []


def workers(demo: Demo) -> set[int]:
    assert demo.process is not None
    children = psutil.Process(demo.process.pid).children(recursive=True)
    return {c.pid for c in children if "worker" in c.cmdline()}


def test_an_operator_sees_a_live_event_plays_its_clip_and_acknowledges_it(
    browser: Browser, demo: Demo
) -> None:
    add_site(demo, "demo-site", "步行街", latitude=31.235, longitude=121.475)  # the demo camera's
    add_site(demo, "north-gate", "北门广场", latitude=31.262, longitude=121.49)
    add_site(demo, "old-town", "老城厢", grid_id="G-0107")  # a grid cell, no coordinates
    key = new_key(demo, "值班员 1", "operator", [], all_sites=True)
    page = open_page(browser)
    log_in(page, demo, key)
    page.wait_for_selector("#wall")
    page.evaluate("window.stayed = true")  # gone if the page were reloaded
    drawn = page.eval_on_selector_all("[data-event]", "cards => cards.map(c => c.dataset.event)")
    pushed = page.wait_for_function(
        """(drawn) => [...document.querySelectorAll("[data-event]")]
             .find((c) => !drawn.includes(c.dataset.event) && c.textContent.includes("区域入侵"))
             ?.dataset.event""",
        arg=drawn,
        timeout=120_000,
    ).json_value()  # a zone intrusion on the demo camera, pushed over the WebSocket
    assert page.evaluate("window.stayed") is True
    card = page.inner_text(f'[data-event="{pushed}"]')
    assert "demo" in card and "高" in card  # its camera and severity
    check_layout(page, "wall")

    def shown() -> bool:
        return page.locator(f'#wall [data-event="{pushed}"]').count() == 1

    filter_by(page, lambda: page.select_option("#filters select[name=status]", "resolved"))
    assert not shown()  # none resolved yet
    filter_by(page, lambda: page.select_option("#filters select[name=status]", ""))
    filter_by(page, lambda: page.select_option("#filters select[name=type]", "zone_intrusion"))
    assert shown()
    site_now = datetime.now(ZoneInfo("Asia/Shanghai"))  # filter times are the site's clock
    until = page.locator("#filters input[name=end]")
    filter_by(page, lambda: until.fill((site_now - timedelta(hours=1)).strftime(MINUTE)))
    assert not shown()  # read as New York's clock, an hour ago in Shanghai is hours ahead
    filter_by(page, lambda: until.fill((site_now + timedelta(hours=1)).strftime(MINUTE)))
    assert shown()

    demo.wait_for(f"/api/events/{pushed}", lambda e: e["has_clip"], timeout=120)
    page.click(f'[data-event="{pushed}"] .title')
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
    check_layout(page, "event")
    custody = "() => [...document.querySelectorAll('#record tr')].map((r) => r.textContent)"
    page.wait_for_function(  # the clip's viewing, in the custody log by the operator's name
        f"() => ({custody})().some((row) => row.includes('值班员 1') && row.includes('fetch'))"
    )
    with page.expect_response(lambda r: r.url.endswith("/actions") and r.ok):
        page.click('.detail [data-action="acknowledge"]')
    page.wait_for_function(  # and the acknowledgement in the timeline, the clip left playing
        f"() => ({custody})().some((row) => row.includes('值班员 1') && row.includes('确认'))"
    )
    assert page.evaluate("document.getElementById('clip').currentTime") > 0
    with page.expect_download() as downloading:  # the evidence bundle, by the operator's session
        page.click("#bundle")
    with zipfile.ZipFile(downloading.value.path()) as bundle:
        assert {"clip.mp4", "manifest.json", "verify.py"} <= set(bundle.namelist())
    row = demo.get(f"/api/events/{pushed}").json()
    assert row["status"] == "acknowledged" and row["acknowledged_by"] == "值班员 1"

    page.click('nav a[href="#/cameras"]')  # the camera grid
    page.wait_for_selector('[data-camera="demo"] .badge[data-state="online"]', timeout=60_000)
    assert page.inner_text('[data-camera="demo"] .badge') == "在线"
    page.wait_for_function(
        "() => document.querySelector('[data-camera=\"demo\"] img')?.naturalWidth > 0",
        timeout=90_000,
    )
    check_layout(page, "cameras")

    page.click('nav a[href="#/map"]')  # where the events were: the demo camera's site only
    page.wait_for_selector('#map [data-site="demo-site"] .count')
    count = page.get_attribute('#map [data-site="demo-site"] .count', "data-count")
    assert count is not None and int(count) >= 1
    assert page.locator('#map circle.heat[data-site="demo-site"]').count() == 1
    assert page.locator('#map circle.heat[data-site="north-gate"]').count() == 0  # no events
    assert page.locator('#map g.site[data-site="north-gate"]').count() == 1
    assert page.inner_text('#grid-cells [data-cell="G-0107"]').split() == ["G-0107", "1", "0", "0"]
    check_layout(page, "map")
    page.click('#map [data-site="demo-site"] .dot')  # its events on the wall
    page.wait_for_selector(f'[data-event="{pushed}"]')
    assert page.eval_on_selector("#filters select[name=site]", "s => s.value") == "demo-site"
    close_page(page)


def filter_by(page: Page, change: Callable[[], object]) -> None:
    """Change a filter of the wall and wait for the wall drawn again from the API's answer."""
    page.evaluate("document.getElementById('wall').dataset.loaded = 'stale'")
    with page.expect_response(lambda r: "/api/events?" in r.url):
        change()
    page.wait_for_selector("#wall[data-loaded=true]")


def click_at(page: Page, selector: str, points: list[tuple[float, float]]) -> None:
    """Click at fractions of an element's width and height, as an installer would."""
    box = page.locator(selector).bounding_box()
    assert box is not None
    for x, y in points:
        page.click(selector, position={"x": x * box["width"], "y": y * box["height"]})


def test_an_installer_adds_a_camera_with_the_probe_and_draws_a_zone_the_worker_applies(
    browser: Browser, demo: Demo
) -> None:
    add_site(demo, "garden", "花园小区", timezone="Europe/Berlin")  # not the default zone
    add_site(demo, "market", "农贸市场")
    elsewhere = {"id": "market-door", "site": "market", "url": demo.camera_url}
    made = httpx.post(f"{demo.api}/api/cameras", json=elsewhere, headers=demo.headers)
    assert made.status_code == 201, made.text
    key = new_key(demo, "安装员 3", "installer", ["garden"])
    page = open_page(browser, english=True)  # the installer works in English
    log_in(page, demo, key)
    page.click("#add-camera")  # installers start on the camera grid
    sites = page.eval_on_selector_all("select[name=site] option", "o => o.map((x) => x.value)")
    assert sites == ["garden"]  # only their own site
    page.fill("input[name=id]", "garden-gate")
    page.fill("input[name=name]", "东门")
    page.fill("input[name=url]", demo.camera_url)
    page.click("#probe")
    codec = page.wait_for_selector('[data-fact="codec"]', timeout=30_000)
    assert codec is not None and codec.inner_text() == "h264"
    assert page.inner_text('[data-fact="resolution"]') == "768\u00d7576"
    page.wait_for_function("() => document.getElementById('setup-picture')?.naturalWidth > 0")
    check_layout(page, "add-camera")
    page.click("#save")  # then the camera's health: online within a lease round
    page.wait_for_selector('[data-camera-detail="garden-gate"]')
    page.wait_for_function(
        """() => {
          const decoded = document.querySelector('[data-figure="decode_fps"]');
          return document.querySelector("#health rect.minute.online") !== null
            && parseFloat(decoded.textContent) > 0;
        }""",
        timeout=120_000,
    )
    page.click('[data-hours="1"]')  # the last hour, at minute scale
    page.wait_for_selector('[data-hours="1"].current')
    page.wait_for_selector("#health rect.minute.online")
    check_layout(page, "camera-health")
    page.click('nav a[href="#/cameras"]')
    page.wait_for_function(  # streaming, and the worker has taken its first picture
        """() => {
          const card = document.querySelector('[data-camera="garden-gate"]');
          return card?.querySelector(".badge").dataset.state === "online"
            && card.querySelector("img")?.naturalWidth > 0;
        }""",
        timeout=120_000,
    )
    cards = page.eval_on_selector_all("[data-camera]", "c => c.map((x) => x.dataset.camera)")
    assert cards == ["garden-gate"]  # not the demo's camera, not the market's
    running = workers(demo)
    assert running, "no worker processes found under the demo"

    page.click('[data-camera="garden-gate"] a.edit')
    page.wait_for_function("() => document.getElementById('setup-picture')?.naturalWidth > 0")
    page.click('[data-tool="zone"]')
    click_at(page, "#drawing", WEST_WALKWAY)
    page.click("#finish-zone")
    page.fill("input[name=shape-name]", "西侧步道")
    page.select_option("select[name=rule]", "intrusion")
    page.uncheck("input[name=always]")  # watching from an hour ago until two hours ahead
    local = datetime.now(ZoneInfo("Europe/Berlin"))  # the site's clock: 7 h behind Shanghai
    page.fill("input[name=active-start]", (local - timedelta(hours=1)).strftime("%H:%M"))
    page.fill("input[name=active-end]", (local + timedelta(hours=2)).strftime("%H:%M"))
    check_layout(page, "zone-rule")
    page.click("#add-shape")
    page.click('[data-tool="line"]')
    click_at(page, "#drawing", [(0.5, 0.2), (0.5, 0.9)])
    page.select_option("select[name=direction]", "a_to_b")
    page.click("#add-shape")
    assert page.locator("#drawing polygon.zone").count() == 1
    assert page.locator("#drawing line.tripwire").count() == 1
    check_layout(page, "zones")
    with page.expect_response(lambda r: r.request.method == "PUT" and r.ok):
        page.click("#save")

    config = demo.get("/api/cameras/garden-gate").json()["config"]
    (zone,) = config["zones"]
    assert zone["name"] == "西侧步道"
    drawn = [c for point in zone["points"] for c in point]
    assert drawn == pytest.approx([c for point in WEST_WALKWAY for c in point], abs=0.01)
    (rule,) = zone["rules"]
    assert rule["type"] == "intrusion" and rule["timezone"] == "Europe/Berlin"
    assert len(rule["active"]) == 1 and len(rule["active"][0]["days"]) == 7
    (line,) = config["lines"]
    assert line["direction"] == "a_to_b"

    def in_the_zone(body: dict[str, Any]) -> dict[str, Any] | None:
        return next((e for e in body["items"] if e["zone"] == "西侧步道"), None)

    event = demo.wait_for("/api/events?camera=garden-gate", in_the_zone, timeout=150)
    assert event["type"] == "zone_intrusion"
    assert workers(demo) == running  # applied by the same worker processes

    page.goto(f"{demo.api}/console/#/wall")
    page.wait_for_selector("#forbidden")  # not an operator
    page.goto(f"{demo.api}/console/#/cameras/market-door/edit")
    error = page.wait_for_selector("#setup-error")
    assert error is not None and "market-door" in error.inner_text()  # as if it did not exist
    close_page(page)


def test_a_shop_key_cannot_open_the_operator_pages(browser: Browser, demo: Demo) -> None:
    add_site(demo, "shop-7", "便利店")
    key = new_key(demo, "shop 7", "shop", ["shop-7"])
    page = open_page(browser)
    page.goto(f"{demo.api}/")
    page.wait_for_selector("form#login")
    check_layout(page, "login")
    log_in(page, demo, key)
    page.wait_for_selector("#forbidden")
    assert page.query_selector("#wall") is None
    assert "无权访问" in page.inner_text("#forbidden")
    check_layout(page, "forbidden")
    page.click("#language")
    page.wait_for_selector("#forbidden")
    assert "may not open" in page.inner_text("#forbidden")  # English, on request
    with page.expect_response(lambda r: r.request.method == "DELETE" and r.status == 204):
        page.click("#logout")
    page.wait_for_selector("form#login")
    me = page.evaluate("async () => (await fetch('/api/me')).status")
    assert me == 401  # the session is closed on the server, not only forgotten
    close_page(page)


def test_chinese_drawn_without_a_chinese_font_is_found(browser: Browser, tmp_path: Path) -> None:
    """The tofu check fails where it should: in a browser whose fontconfig knows only a Latin
    font, Chinese text is reported, and in the tests' browser the same page is not."""
    latin = next(
        file
        for line in subprocess.run(
            ["fc-list", ":lang=en", "file", "family"], capture_output=True, text=True, check=True
        ).stdout.splitlines()
        for file, families in [line.split(": ", 1)]
        if not chinese_families() & set(families.split(","))
    )
    fonts = tmp_path / "fonts"
    fonts.mkdir()
    shutil.copy(latin, fonts)
    config = tmp_path / "fonts.conf"
    config.write_text(
        f"<?xml version='1.0'?><fontconfig><dir>{fonts}</dir>"
        f"<cachedir>{tmp_path / 'cache'}</cachedir></fontconfig>"
    )
    content = '<html lang="zh-CN"><body><p>事件 1</p><button>确认</button></body></html>'
    page = browser.new_page()
    page.set_content(content)
    assert tofu(page) == []
    page.close()
    bare = browser.browser_type.launch(
        executable_path=CHROMIUM, args=QUIET, env={**os.environ, "FONTCONFIG_FILE": str(config)}
    )
    page = bare.new_page()
    page.set_content(content)
    found = tofu(page)
    bare.close()
    assert len(found) == 2 and found[0].startswith("'事件 1' drawn in "), found
