// The operator's map: the key's sites where they are, a heat layer by their events' count,
// and the sites that have only a grid cell counted per cell.
import { api, element, filterChoice, selectOf, svg, view } from "./http.js";
import { t, typeName } from "./i18n.js";

const WIDTH = 1000;
const HEIGHT = 620;
const PADDING = 70; // room for the outermost sites' heat and labels
const DAYS = [1, 7, 30];

// Where each site with coordinates lies on the drawing: equirectangular, with longitude
// shortened by the cosine of the middle latitude so a city is not stretched sideways.
function projection(sites) {
  const lats = sites.map((s) => s.latitude);
  const lons = sites.map((s) => s.longitude);
  const middle = ((Math.min(...lats) + Math.max(...lats)) / 2) * (Math.PI / 180);
  const xs = lons.map((lon) => lon * Math.cos(middle));
  const [left, right] = [Math.min(...xs), Math.max(...xs)];
  const [bottom, top] = [Math.min(...lats), Math.max(...lats)];
  const scale = Math.min((WIDTH - 2 * PADDING) / Math.max(right - left, 1e-3), (HEIGHT - 2 * PADDING) / Math.max(top - bottom, 1e-3));
  const [cx, cy] = [(left + right) / 2, (bottom + top) / 2];
  return (site) => [
    WIDTH / 2 + (site.longitude * Math.cos(middle) - cx) * scale,
    HEIGHT / 2 - (site.latitude - cy) * scale,
  ];
}

function siteMap(placed, most, open) {
  const place = projection(placed);
  const heat = [];
  const marks = [];
  for (const site of placed) {
    const [x, y] = place(site);
    if (site.events) {
      const radius = 18 + 52 * Math.sqrt(site.events / most);
      heat.push(svg("circle", { class: "heat", "data-site": site.id, cx: x, cy: y, r: radius }));
    }
    const marker = svg(
      "g",
      { class: `site${site.high ? " has-high" : ""}`, "data-site": site.id, tabindex: "0", role: "link" },
      svg("circle", { class: "dot", cx: x, cy: y, r: 6 }),
      svg("text", { x: x + 10, y: y - 8, class: "name", text: site.name }),
      svg("text", { x: x + 10, y: y + 12, class: "count", "data-count": String(site.events), text: `${site.events} · ${t("severity.high")} ${site.high}` }),
    );
    marker.addEventListener("click", () => open(site.id));
    marks.push(marker);
  }
  return svg(
    "svg",
    { id: "map", class: "map", viewBox: `0 0 ${WIDTH} ${HEIGHT}`, role: "img", "aria-label": t("nav.map") },
    svg("defs", {}, svg("radialGradient", { id: "warm" },
      svg("stop", { offset: "0%", class: "hot" }), svg("stop", { offset: "55%", class: "warm" }), svg("stop", { offset: "100%", class: "cold" }))),
    svg("rect", { class: "ground", x: 0, y: 0, width: WIDTH, height: HEIGHT }),
    ...Array.from({ length: 9 }, (_, i) => svg("line", { class: "graticule", x1: (i + 1) * 100, y1: 0, x2: (i + 1) * 100, y2: HEIGHT })),
    ...Array.from({ length: 5 }, (_, i) => svg("line", { class: "graticule", x1: 0, y1: (i + 1) * 103, x2: WIDTH, y2: (i + 1) * 103 })),
    svg("g", { class: "heat-layer" }, ...heat),
    ...marks,
  );
}

// Sites without coordinates, counted per grid cell, each row tinted by its share of the most.
function gridCells(sites, most) {
  const cells = new Map();
  for (const site of sites) {
    const cell = cells.get(site.grid_id) ?? { sites: 0, events: 0, high: 0 };
    cells.set(site.grid_id, { sites: cell.sites + 1, events: cell.events + site.events, high: cell.high + site.high });
  }
  const rows = [...cells.entries()].sort((a, b) => b[1].events - a[1].events).map(([id, cell]) => {
    const row = element("tr", { "data-cell": id },
      element("td", { text: id }), element("td", { text: String(cell.sites) }),
      element("td", { text: String(cell.events) }), element("td", { text: String(cell.high) }));
    row.style.backgroundColor = `rgba(198, 40, 40, ${(0.45 * cell.events) / most})`;
    return row;
  });
  return element("table", { class: "cells", id: "grid-cells" },
    element("tr", {}, ...["map.cell", "map.sites", "map.events", "map.high"].map((word) => element("th", { text: t(word) }))),
    ...rows);
}

// #/map: where the events of the last days were, for the key's sites.
export async function showMap(filters, types, open) {
  const days = selectOf("days", DAYS.map(String), (d) => t(`map.days_${d}`), { "aria-label": t("map.days") });
  days.value = String(filters.days || 7);
  const type = filterChoice("type", types, typeName, filters.type);
  const body = element("div", { class: "map-body" });
  const bar = element("form", { class: "filters", id: "map-filters" }, days, type);
  bar.addEventListener("change", () => {
    filters.days = Number(days.value);
    filters.type = type.value;
    draw();
  });
  view().replaceChildren(bar, body);
  let asked = 0; // an answer to older filters than the latest is dropped
  const draw = async () => {
    const turn = ++asked;
    const query = new URLSearchParams({ start: new Date(Date.now() - Number(days.value) * 86_400_000).toISOString() });
    if (type.value) query.set("type", type.value);
    const sites = await (await api(`/api/stats/sites?${query}`)).json();
    if (turn !== asked) return;
    const most = Math.max(1, ...sites.map((s) => s.events));
    const placed = sites.filter((s) => s.latitude !== null && s.longitude !== null);
    const cells = sites.filter((s) => !(s.latitude !== null && s.longitude !== null) && s.grid_id);
    const ranked = [...sites].sort((a, b) => b.events - a.events);
    body.replaceChildren(
      element("div", { class: "card map-card" }, placed.length ? siteMap(placed, most, open) : element("p", { class: "empty", text: t("map.no_places") })),
      element("div", { class: "card" },
        element("h2", { text: t("map.ranking") }),
        element("table", { class: "ranking" },
          element("tr", {}, ...["map.site", "map.events", "map.high"].map((word) => element("th", { text: t(word) }))),
          ...ranked.map((s) => element("tr", { "data-ranked": s.id },
            element("td", {}, element("a", { href: "#/wall", text: s.name, onclick: (click) => { click.preventDefault(); open(s.id); } })),
            element("td", { text: String(s.events) }), element("td", { text: String(s.high) })))),
        ...(cells.length ? [element("h2", { text: t("map.cells") }), gridCells(cells, most)] : [])),
    );
  };
  await draw();
}
