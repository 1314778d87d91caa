// The camera grid (health badges, the latest picture) and one camera's health over time.
import { api, definitions, element, refusal, svg, view } from "./http.js";
import { localTime, t } from "./i18n.js";

const PICTURE_EVERY_MS = 10_000;
const RANGES = [1, 6, 24, 168]; // hours of health history to show
const WIDTH = 1000; // the chart's own units; it is stretched to the page's width
const HEIGHT = 200;
const BAND = 24; // the state band above the frame rate

function picture(camera) {
  const image = element("img", {
    alt: camera.name || camera.id,
    src: `/api/cameras/${encodeURIComponent(camera.id)}/picture?at=${Date.now()}`,
  });
  image.addEventListener("error", () => image.replaceWith(element("div", { class: "no-picture", text: t("cameras.no_picture") })));
  return image;
}

function badge(camera) {
  return element("span", { class: `badge ${camera.state}`, "data-state": camera.state, text: t(`state.${camera.state}`) });
}

function cameraCard(camera, sites, canSetUp) {
  const id = encodeURIComponent(camera.id);
  const links = [element("a", { href: `#/cameras/${id}`, class: "health", text: t("cameras.health") })];
  if (canSetUp && camera.source === "api") {
    links.push(element("a", { href: `#/cameras/${id}/edit`, class: "edit", text: t("cameras.edit") }));
  }
  return element(
    "article",
    { class: "camera", "data-camera": camera.id },
    picture(camera),
    element(
      "div",
      { class: "camera-info" },
      element("span", { class: "title", text: camera.name || camera.id }),
      badge(camera),
      element("span", { class: "meta", text: `${sites[camera.site]?.name ?? camera.site} · ${camera.decode_fps.toFixed(1)} fps` }),
      ...links,
    ),
  );
}

// #/cameras: every camera the key may see, refreshed with a new picture every 10 s.
export async function showCameras(sites, canSetUp) {
  const grid = element("section", { id: "cameras", class: "cameras", "aria-label": t("nav.cameras") });
  const tools = canSetUp
    ? [element("div", { class: "tools" }, element("a", { href: "#/cameras/new", class: "button primary", id: "add-camera", text: t("cameras.add") }))]
    : [];
  view().replaceChildren(...tools, grid);
  const refresh = async () => {
    if (!document.body.contains(grid)) return clearInterval(timer);
    const cameras = await (await api("/api/cameras")).json();
    grid.replaceChildren(...cameras.map((camera) => cameraCard(camera, sites, canSetUp)));
  };
  const timer = setInterval(refresh, PICTURE_EVERY_MS);
  await refresh();
}

// The minutes of history as a chart: a band of the worst state of each minute, and the
// decode frame rate (mean, and lowest in the minute) under it.
function healthChart(points, since, until) {
  const span = until - since;
  const x = (at) => ((new Date(at) - since) / span) * WIDTH;
  const minute = Math.max(1, (60_000 / span) * WIDTH);
  const top = Math.max(1, ...points.map((p) => p.decode_fps_avg), ...points.map((p) => p.input_fps_avg));
  const y = (fps) => HEIGHT - (fps / top) * (HEIGHT - BAND - 8);
  // Minutes without heartbeats (the camera was not running) break the lines.
  const runs = [];
  for (const [i, p] of points.entries()) {
    if (!i || new Date(p.minute) - new Date(points[i - 1].minute) > 120_000) runs.push([]);
    runs.at(-1).push(p);
  }
  const lines = (name, kind) =>
    runs.map((run) => svg("polyline", { class: kind, points: run.map((p) => `${x(p.minute).toFixed(1)},${y(p[name]).toFixed(1)}`).join(" ") }));
  const chart = svg(
    "svg",
    { id: "health", class: "health-chart", viewBox: `0 0 ${WIDTH} ${HEIGHT}`, preserveAspectRatio: "none", role: "img", "aria-label": t("health.title") },
    svg("rect", { class: "plot", x: 0, y: BAND, width: WIDTH, height: HEIGHT - BAND }),
    ...points.map((p) => svg("rect", { class: `minute ${p.state}`, "data-minute": p.minute, x: x(p.minute), y: 0, width: minute, height: BAND - 4 })),
    ...lines("decode_fps_min", "fps-min"),
    ...lines("decode_fps_avg", "fps"),
  );
  return { chart, top };
}

function healthSummary(points) {
  const online = points.filter((p) => p.state === "online").length;
  const mean = (name) => (points.length ? points.reduce((sum, p) => sum + p[name], 0) / points.length : 0);
  // Minutes since the first heartbeat of the range: those without one (no worker ran the
  // camera) count against its uptime as well.
  const minutes = points.length ? Math.max(points.length, Math.ceil((Date.now() - new Date(points[0].minute)) / 60_000)) : 0;
  const figures = [
    ["uptime", minutes ? `${((100 * online) / minutes).toFixed(1)} %` : "–"],
    ["offline_minutes", String(points.filter((p) => p.state === "offline").length)],
    ["unheard_minutes", String(minutes - points.length)],
    ["reconnects", String(points.reduce((sum, p) => sum + p.reconnects, 0))],
    ["decode_fps", mean("decode_fps_avg").toFixed(1)],
    ["bitrate", `${mean("bitrate_kbps_avg").toFixed(0)} kbps`],
  ];
  return element(
    "dl",
    { class: "figures", id: "health-figures" },
    ...definitions(figures, (name) => t(`health.${name}`), "figure"),
  );
}

function cameraNow(camera, sites, canSetUp) {
  const zone = sites[camera.site]?.timezone;
  const facts = [
    ["input_fps", `${camera.input_fps.toFixed(1)} fps`],
    ["decode_fps", `${camera.decode_fps.toFixed(1)} fps`],
    ["bitrate", `${camera.bitrate_kbps.toFixed(0)} kbps`],
    ["reconnects", String(camera.reconnects)],
    ["last_frame", camera.last_frame_at ? localTime(camera.last_frame_at, zone) : "–"],
    ...(camera.reasons || camera.error ? [["reasons", camera.reasons || camera.error]] : []),
  ];
  const links = canSetUp && camera.source === "api"
    ? [element("a", { href: `#/cameras/${encodeURIComponent(camera.id)}/edit`, class: "button", text: t("cameras.edit") })]
    : [];
  return [
    picture(camera),
    element("h2", {}, element("span", { text: camera.name || camera.id }), badge(camera)),
    element("p", { class: "meta", text: sites[camera.site]?.name ?? camera.site }),
    element("dl", { class: "figures" }, ...definitions(facts, (name) => t(`health.${name}`), "now")),
    ...links,
  ];
}

// #/cameras/{id}: the camera now (picture, state, figures) and its health over time, both
// refreshed every 10 s while shown.
export async function showCamera(id, sites, canSetUp) {
  const path = `/api/cameras/${encodeURIComponent(id)}`;
  const first = await api(path);
  if (!first.ok) {
    view().replaceChildren(element("p", { class: "card error", id: "camera-error", text: await refusal(first) }));
    return;
  }
  const now = element("div", { class: "card now" });
  const history = element("div", { class: "history" });
  const ranges = element("div", { class: "tools ranges" });
  const section = element(
    "section",
    { class: "camera-detail", "data-camera-detail": id },
    now,
    element("div", { class: "card" }, element("h2", { text: t("health.title") }), ranges, history),
  );
  view().replaceChildren(section);
  let hours = 24;
  let asked = 0; // answers to an older refresh than the latest are dropped
  let points = [];
  let historyAt = 0;
  const refresh = async (camera) => {
    if (!document.body.contains(section)) return clearInterval(timer);
    const turn = ++asked;
    // The history is by the minute: asked again once a minute, or when the range changes.
    const again = Date.now() - historyAt >= 60_000;
    const [answer, minutes] = await Promise.all([
      camera ? null : api(path),
      again ? api(`${path}/health?hours=${hours}`) : null,
    ]);
    if (turn !== asked) return;
    if ((answer && !answer.ok) || (minutes && !minutes.ok)) {
      clearInterval(timer);
      view().replaceChildren(element("p", { class: "card error", id: "camera-error", text: await refusal(answer?.ok === false ? answer : minutes) }));
      return;
    }
    const fresh = camera ?? (await answer.json());
    if (minutes) {
      points = await minutes.json();
      historyAt = Date.now();
    }
    const zone = sites[fresh.site]?.timezone;
    const until = new Date();
    const since = new Date(until - hours * 3_600_000);
    const { chart, top } = healthChart(points, since, until);
    now.replaceChildren(...cameraNow(fresh, sites, canSetUp));
    for (const button of ranges.children) button.classList.toggle("current", button.dataset.hours === String(hours));
    history.replaceChildren(
      element("div", { class: "axis" }, element("span", { text: `${top.toFixed(0)} fps` }), element("span", { class: "legend", text: t("health.legend") })),
      chart,
      element("div", { class: "axis" }, element("span", { text: localTime(since, zone) }), element("span", { text: localTime(until, zone) })),
      healthSummary(points),
    );
  };
  const pick = (chosen) => () => {
    hours = chosen;
    historyAt = 0;
    refresh();
  };
  ranges.append(...RANGES.map((h) => element("button", { type: "button", "data-hours": String(h), text: t(`health.hours_${h}`), onclick: pick(h) })));
  const timer = setInterval(refresh, PICTURE_EVERY_MS);
  await refresh(await first.json());
}
