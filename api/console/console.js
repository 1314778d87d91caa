// The console: the operator's live event wall and event review, on the API and nothing else.
import { api, element, filterChoice, view } from "./http.js";
import { language, localTime, momentIn, t, translate, typeName } from "./i18n.js";
import { showCamera, showCameras } from "./cameras.js";
import { showMap } from "./map.js";
import { showEditCamera, showNewCamera } from "./setup.js";

const OPERATOR_ROLES = ["admin", "operator"];
const CAMERA_ROLES = ["admin", "operator", "installer"];
const SETUP_ROLES = ["admin", "installer"];
const state = { me: null, sites: {}, events: new Map(), socket: null, filters: {}, mapFilters: {} };
const STATUSES = ["new", "acknowledged", "resolved", "false_alarm"];
const TYPES = [
  "zone_intrusion", "loitering", "crowd", "line_crossing", "wrong_way", "after_hours",
  "illegal_parking", "abandoned_object", "removed_object", "alarm_panel", "video_loss",
];

function showLogin() {
  document.getElementById("nav").replaceChildren();
  document.getElementById("who").textContent = "";
  document.getElementById("logout").hidden = true;
  view().replaceChildren(document.getElementById("login-view").content.cloneNode(true));
  translate(view());
  document.getElementById("login").addEventListener("submit", async (submitted) => {
    submitted.preventDefault();
    const key = new FormData(submitted.target).get("key");
    const response = await fetch("/api/session", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ key }),
    });
    if (!response.ok) {
      const error = document.getElementById("login-error");
      error.textContent = t("login.failed");
      error.hidden = false;
      return;
    }
    await start();
  });
}

function siteZone(site) {
  return state.sites[site]?.timezone;
}

function beep() {
  // A high-severity event: a short tone, where the browser lets the page play one.
  try {
    const audio = new AudioContext();
    const tone = audio.createOscillator();
    tone.frequency.value = 880;
    tone.connect(audio.destination);
    tone.start();
    tone.stop(audio.currentTime + 0.25);
  } catch (error) {
    console.debug("no sound", error);
  }
}

async function act(event, action, note) {
  const response = await api(`/api/events/${event.id}/actions`, {
    method: "POST",
    body: JSON.stringify({ action, note }),
  });
  if (response.ok) {
    upsert(await response.json(), false);
    await refreshRecord(event.id);
  }
}

function eventCard(event) {
  const note = element("input", { placeholder: t("action.note"), "aria-label": t("action.note") });
  const buttons = ["acknowledge", "resolve", "false_alarm"]
    .filter((action) => action !== "acknowledge" || event.status === "new")
    .filter(() => event.status === "new" || event.status === "acknowledged")
    .map((action) =>
      element("button", {
        type: "button",
        "data-action": action,
        text: t(`action.${action}`),
        onclick: (click) => {
          click.stopPropagation();
          act(event, action, note.value);
        },
      }),
    );
  const title = `${typeName(event.type)} · ${event.camera_id}${event.zone ? " · " + event.zone : ""}`;
  return element(
    "article",
    { class: `event ${event.severity}`, "data-event": event.id, onclick: () => openEvent(event.id) },
    element(
      "div",
      { class: "what" },
      element("div", { class: "title", text: title }),
      element("div", {
        class: "meta",
        text: `${localTime(event.started_at, siteZone(event.site))} · ${event.site} · ${t("severity." + event.severity)}`,
      }),
    ),
    element(
      "div",
      { class: "actions", onclick: (click) => click.stopPropagation() },
      element("span", { class: "status", "data-status": event.status, text: t("status." + event.status) }),
      ...(buttons.length ? [note, ...buttons] : []),
    ),
  );
}

// The filters' times are the wall-clock time of the chosen site (or the first site).
function filterZone() {
  const site = state.filters.site || Object.keys(state.sites)[0];
  return siteZone(site) || "Asia/Shanghai";
}

function wanted(event) {
  const { site, type, status, start, end } = state.filters;
  const at = new Date(event.started_at);
  const zone = filterZone();
  return (!site || event.site === site) && (!type || event.type === type)
    && (!status || event.status === status)
    && (!start || at >= momentIn(start, zone)) && (!end || at < momentIn(end, zone));
}

function upsert(event, fresh) {
  state.events.set(event.id, event);
  const wall = document.getElementById("wall");
  if (!wall) return;
  if (!wanted(event)) {
    wall.querySelector(`[data-event="${event.id}"]`)?.remove();
    return;
  }
  const card = eventCard(event);
  const old = wall.querySelector(`[data-event="${event.id}"]`);
  if (old) old.replaceWith(card);
  else wall.prepend(card);
  wall.querySelector(".empty")?.remove();
  if (fresh && event.severity === "high") {
    card.classList.add("alert");
    beep();
  }
}

function filterBar() {
  const when = (name) => {
    const input = element("input", { type: "datetime-local", name, "aria-label": t(`filter.${name}`) });
    input.value = state.filters[name] || "";
    return element("label", {}, element("span", { text: t(`filter.${name}`) }), input);
  };
  const bar = element(
    "form",
    { id: "filters", class: "filters" },
    filterChoice("site", Object.keys(state.sites), (site) => state.sites[site].name, state.filters.site),
    filterChoice("type", TYPES, typeName, state.filters.type),
    filterChoice("status", STATUSES, (status) => t(`status.${status}`), state.filters.status),
    when("start"),
    when("end"),
    element("span", { class: "zone-name", id: "filter-zone", text: filterZone() }),
  );
  bar.addEventListener("change", () => {
    state.filters = Object.fromEntries(
      [...new FormData(bar).entries()].filter(([, value]) => value),
    );
    showWall();
  });
  return bar;
}

async function showWall() {
  const wall = element("section", { id: "wall", class: "wall", "aria-label": t("nav.wall") });
  view().replaceChildren(filterBar(), wall);
  const query = new URLSearchParams({ limit: "50" });
  for (const [name, value] of Object.entries(state.filters)) {
    query.set(name, name === "start" || name === "end" ? momentIn(value, filterZone()).toISOString() : value);
  }
  const page = await (await api(`/api/events?${query}`)).json();
  if (!page.items.length) wall.append(element("p", { class: "empty", text: t("wall.empty") }));
  for (const event of page.items.reverse()) upsert(event, false);
  wall.dataset.loaded = "true"; // the first page of the filters' events is in
}

function listen() {
  if (state.socket) return;
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const socket = new WebSocket(`${scheme}://${location.host}/api/live/ws`);
  state.socket = socket;
  socket.onmessage = (frame) => {
    for (const message of JSON.parse(frame.data)) {
      if (message.kind === "event") upsert(message.event, message.change === "started");
    }
  };
  socket.onclose = (closed) => {
    if (state.socket !== socket) return; // closed on purpose (log out): not to be reopened
    state.socket = null;
    if (!state.me) return;
    // 1008: the key was revoked or the session ended; asking the API shows the login then.
    const check = closed.code === 1008 ? api("/api/me") : Promise.resolve();
    check.then(() => setTimeout(listen, 2000)).catch(() => {});
  };
}

// The end of a session: its live feed closes with it (the next login may be another key's).
function loggedOut() {
  state.me = null;
  const socket = state.socket;
  state.socket = null;
  socket?.close();
  showLogin();
}

async function openEvent(id) {
  location.hash = `#/events/${id}`;
}

// An event's record beside its media: the card with its actions, timeline and custody log.
async function eventRecord(id) {
  const [event, trail, custody] = await Promise.all(
    [`/api/events/${id}`, `/api/events/${id}/actions`, `/api/events/${id}/custody`].map(
      async (path) => (await api(path)).json(),
    ),
  );
  const zone = siteZone(event.site);
  const rows = (entries, columns) =>
    element(
      "table",
      {},
      element("tr", {}, ...columns.map((c) => element("th", { text: t(c[0]) }))),
      ...entries.map((entry) => element("tr", {}, ...columns.map((c) => element("td", { text: c[1](entry) })))),
    );
  const record = element(
    "div",
    { class: "card", id: "record" },
    element("h2", { text: `${typeName(event.type)} · ${event.camera_id}` }),
    eventCard(event),
    element("h3", { text: t("detail.timeline") }),
    rows(trail, [
      ["detail.when", (s) => localTime(s.at, zone)],
      ["detail.who", (s) => s.actor],
      ["detail.what", (s) => `${t("action." + s.action)} ${s.note}`],
    ]),
    element("h3", { text: t("detail.custody") }),
    ...(OPERATOR_ROLES.includes(state.me.role)
      ? [element("a", { id: "bundle", href: `/api/events/${id}/bundle`, download: "", text: t("detail.bundle") })]
      : []),
    rows(custody, [
      ["detail.when", (c) => localTime(c.at, zone)],
      ["detail.who", (c) => c.actor],
      ["detail.what", (c) => `${c.action} ${c.media ?? ""}`],
    ]),
  );
  return { event, record };
}

async function showEvent(id) {
  const { event, record } = await eventRecord(id);
  const media = [];
  if (event.has_snapshot) {
    media.push(element("h3", { text: t("detail.snapshot") }));
    media.push(element("img", { src: `/api/events/${id}/snapshot`, alt: t("detail.snapshot") }));
  }
  if (event.has_clip) {
    media.push(element("h3", { text: t("detail.clip") }));
    const clip = element("video", { id: "clip", src: `/api/events/${id}/clip`, controls: "", muted: "", preload: "auto" });
    clip.addEventListener("loadeddata", () => refreshRecord(id), { once: true }); // its viewing is in custody now
    media.push(clip);
  }
  view().replaceChildren(
    element(
      "section",
      { class: "detail", "data-detail": id },
      element("div", {}, element("button", { type: "button", text: t("detail.back"), onclick: () => (location.hash = "#/wall") }), ...media),
      record,
    ),
  );
}

// The record of the event shown, drawn again (after an action; its clip viewed), the media
// left playing.
async function refreshRecord(id) {
  if (!document.querySelector(`[data-detail="${id}"]`)) return;
  const { record } = await eventRecord(id);
  document.getElementById("record")?.replaceWith(record);
}

// The wall with the events of one site only (from the map).
function wallOf(site) {
  state.filters = { site };
  location.hash = "#/wall";
}

function forbidden() {
  view().replaceChildren(element("p", { class: "card", id: "forbidden", text: t("forbidden") }));
}

async function route() {
  if (!state.me) return;
  const operator = OPERATOR_ROLES.includes(state.me.role);
  const match = location.hash.match(/^#\/events\/([0-9a-f]+)$/);
  const editing = location.hash.match(/^#\/cameras\/([^/]+)\/edit$/);
  const camera = location.hash.match(/^#\/cameras\/([^/]+)$/);
  const setup = SETUP_ROLES.includes(state.me.role);
  const cameras = CAMERA_ROLES.includes(state.me.role);
  if (location.hash === "#/cameras/new") return setup ? showNewCamera(state.sites) : forbidden();
  if (editing) return setup ? showEditCamera(decodeURIComponent(editing[1]), state.sites) : forbidden();
  if (location.hash === "#/cameras") return cameras ? showCameras(state.sites, setup) : forbidden();
  if (camera) return cameras ? showCamera(decodeURIComponent(camera[1]), state.sites, setup) : forbidden();
  if (!operator) return forbidden();
  if (location.hash === "#/map") return showMap(state.mapFilters, TYPES, wallOf);
  if (match) return showEvent(match[1]);
  return showWall();
}

function navigation() {
  const links = [
    ...(OPERATOR_ROLES.includes(state.me.role) ? [["#/wall", "nav.wall"], ["#/map", "nav.map"]] : []),
    ...(CAMERA_ROLES.includes(state.me.role) ? [["#/cameras", "nav.cameras"]] : []),
  ];
  document.getElementById("nav").replaceChildren(
    ...links.map(([href, word]) => element("a", { href, text: t(word), class: location.hash === href ? "current" : "" })),
  );
}

async function start() {
  const response = await fetch("/api/me", { credentials: "same-origin" });
  if (!response.ok) return showLogin();
  state.me = await response.json();
  document.getElementById("who").textContent = `${state.me.name} (${state.me.role})`;
  document.getElementById("logout").hidden = false;
  const sites = await (await api("/api/sites")).json();
  state.sites = Object.fromEntries(sites.map((site) => [site.id, site]));
  if (!location.hash) location.hash = OPERATOR_ROLES.includes(state.me.role) ? "#/wall" : "#/cameras";
  navigation();
  if (OPERATOR_ROLES.includes(state.me.role)) listen();
  await route();
}

document.getElementById("language").addEventListener("click", () => {
  localStorage.setItem("language", language() === "en" ? "zh-CN" : "en");
  location.reload();
});
document.getElementById("logout").addEventListener("click", async () => {
  await api("/api/session", { method: "DELETE" });
  loggedOut();
});
window.addEventListener("session-ended", loggedOut);
window.addEventListener("hashchange", () => {
  if (state.me) {
    navigation();
    route();
  }
});
document.getElementById("language").textContent = t("language");
translate(document);
start();
