// The installer's views: add a camera after probing it, draw its zones and lines on its
// picture with a rule (parameters, schedule) per zone, and save; all through the API.
import { api, definitions, element, refusal, selectOf, svg, view } from "./http.js";
import { t, typeName } from "./i18n.js";

const DAYS = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
const VEHICLES = "car, truck, bus, motorcycle";
// Each zone rule the editor offers: its own numeric parameters (name, default) and labels.
const RULES = {
  intrusion: { event: "zone_intrusion", labels: "person", numbers: [["min_dwell_s", 0]] },
  loitering: { event: "loitering", labels: "person", numbers: [["dwell_s", 60]] },
  crowd: { event: "crowd", labels: "person", numbers: [["min_count", 5], ["duration_s", 10]] },
  illegal_parking: { event: "illegal_parking", labels: VEHICLES, numbers: [["stationary_s", 60]] },
  wrong_way: { event: "wrong_way", labels: "person", numbers: [] },
  after_hours: { event: "after_hours", labels: "person", numbers: [] },
  abandoned_object: { event: "abandoned_object", numbers: [["min_static_s", 30]] },
  removed_object: { event: "removed_object", numbers: [["min_static_s", 30]] },
};
// Wrong way: the allowed direction of travel, as a vector in image coordinates.
const HEADINGS = { right: [1, 0], left: [-1, 0], down: [0, 1], up: [0, -1] };

function field(name, input) {
  return element("label", { class: "field" }, element("span", { text: t(`setup.${name}`) }), input);
}

function input(name, attributes = {}) {
  return element("input", { name, "aria-label": t(`setup.${name}`), ...attributes });
}

function select(name, values, label) {
  return selectOf(name, values, label, { "aria-label": t(`setup.${name}`) });
}

// A daily period (days of the week, from, until) as the API's `Period` takes it.
function periodEditor(name, from = "00:00", until = "00:00") {
  const days = DAYS.map((day) =>
    element("label", { class: "day" }, element("input", { type: "checkbox", name: `${name}-day`, value: day, checked: "" }), element("span", { text: t(`day.${day}`) })),
  );
  const start = input(`${name}-start`, { type: "time", value: from });
  const end = input(`${name}-end`, { type: "time", value: until });
  const box = element(
    "fieldset",
    { class: "period", "data-period": name },
    element("legend", { text: t(`setup.${name}`) }),
    element("div", { class: "days" }, ...days),
    element("div", { class: "times" }, field(`${name}-start`, start), field(`${name}-end`, end)),
  );
  box.value = () => ({
    days: days.map((day) => day.querySelector("input")).filter((c) => c.checked).map((c) => c.value),
    start: start.value,
    end: end.value,
  });
  return box;
}

// The rule of a zone: its type, parameters, labels, severity and schedule (`active`).
function ruleEditor() {
  const type = select("rule", Object.keys(RULES), (rule) => typeName(RULES[rule].event));
  const parameters = element("div", { class: "parameters" });
  const always = element("input", { type: "checkbox", name: "always", checked: "" });
  const schedule = periodEditor("active");
  const severity = select("severity", ["", "high", "medium", "low"], (s) => (s ? t(`severity.${s}`) : t("setup.default")));
  let extra = () => ({});
  const drawParameters = () => {
    const rule = RULES[type.value];
    const numbers = rule.numbers.map(([name, value]) =>
      field(name, input(name, { type: "number", min: "0", step: "any", value: String(value), "data-number": name })),
    );
    const labels = rule.labels ? [field("labels", input("labels", { value: rule.labels }))] : [];
    const more = [];
    extra = () => ({});
    if (type.value === "wrong_way") {
      const heading = select("heading", Object.keys(HEADINGS), (h) => t(`heading.${h}`));
      more.push(field("heading", heading));
      extra = () => ({ direction: HEADINGS[heading.value] });
    }
    if (type.value === "after_hours") {
      const open = periodEditor("open", "08:00", "20:00");
      more.push(open);
      extra = () => ({ open: [open.value()] });
    }
    parameters.replaceChildren(...numbers, ...labels, ...more);
  };
  type.addEventListener("change", drawParameters);
  drawParameters();
  const syncSchedule = () => (schedule.hidden = always.checked);
  always.addEventListener("change", syncSchedule);
  syncSchedule();
  const box = element(
    "div",
    { class: "rule" },
    field("rule", type),
    parameters,
    field("severity", severity),
    element("label", { class: "check" }, always, element("span", { text: t("setup.always") })),
    schedule,
  );
  box.value = () => {
    const rule = { type: type.value, ...extra() };
    for (const number of parameters.querySelectorAll("[data-number]")) rule[number.name] = Number(number.value);
    const labels = parameters.querySelector("input[name=labels]");
    if (labels) rule.labels = labels.value.split(",").map((l) => l.trim()).filter(Boolean);
    if (severity.value) rule.severity = severity.value;
    if (!always.checked) rule.active = [schedule.value()];
    return rule;
  };
  return box;
}

// Where a click on the drawing falls, as fractions of the picture (what the API takes).
function fraction(click, drawing) {
  const box = drawing.getBoundingClientRect();
  const clamp = (v) => Math.min(1, Math.max(0, Math.round(v * 1000) / 1000));
  return [clamp((click.clientX - box.left) / box.width), clamp((click.clientY - box.top) / box.height)];
}

// The zones and lines of a camera drawn over its picture, and the tools to add more.
function shapeEditor(picture, config) {
  const shapes = { zones: [...(config.zones || [])], lines: [...(config.lines || [])] };
  const image = element("img", { id: "setup-picture", src: picture, alt: t("setup.picture") });
  const drawing = svg("svg", { id: "drawing", class: "drawing", viewBox: "0 0 1000 1000", preserveAspectRatio: "none" });
  const list = element("ul", { id: "shapes", class: "shapes" });
  const form = element("div", { id: "shape-form", class: "shape-form" });
  const hint = element("p", { class: "hint", text: t("setup.hint") });
  let tool = null;
  let points = [];
  let pending = null; // drawn, waiting for its name and rule

  const point = ([x, y]) => `${x * 1000},${y * 1000}`;
  const redraw = () => {
    const marks = [];
    for (const zone of shapes.zones) {
      marks.push(svg("polygon", { class: "zone", points: zone.points.map(point).join(" ") }));
    }
    for (const line of shapes.lines) marks.push(...lineMarks(line));
    if (pending?.kind === "zone") marks.push(svg("polygon", { class: "zone pending", points: pending.points.map(point).join(" ") }));
    if (pending?.kind === "line") marks.push(...lineMarks({ points: pending.points, direction: pending.direction() }));
    if (points.length) {
      marks.push(svg("polyline", { class: "drafting", points: points.map(point).join(" ") }));
      for (const p of points) marks.push(svg("circle", { class: "vertex", cx: p[0] * 1000, cy: p[1] * 1000, r: 6 }));
    }
    drawing.replaceChildren(arrowHead(), ...marks);
    list.replaceChildren(
      ...shapes.zones.map((zone, i) => shapeItem(`${t("setup.zone")} ${zone.name}`, zone.rules?.map((r) => typeName(RULES[r.type]?.event ?? r.type)).join(", ") || typeName("zone_intrusion"), () => shapes.zones.splice(i, 1))),
      ...shapes.lines.map((line, i) => shapeItem(`${t("setup.line")} ${line.name}`, t(`direction.${line.direction ?? "both"}`), () => shapes.lines.splice(i, 1))),
    );
  };
  const shapeItem = (title, what, remove) =>
    element(
      "li",
      { "data-shape": title },
      element("span", { class: "title", text: title }),
      element("span", { class: "meta", text: what }),
      element("button", { type: "button", text: t("setup.remove"), onclick: () => { remove(); redraw(); } }),
    );

  const finish = () => {
    if (!tool || (tool === "zone" ? points.length < 3 : points.length !== 2)) return;
    const name = input("shape-name", { required: "", maxlength: "64", value: `${t(`setup.${tool}`)} ${shapes.zones.length + shapes.lines.length + 1}` });
    const drawn = points;
    const kind = tool;
    const rule = kind === "zone" ? ruleEditor() : null;
    const direction = select("direction", ["both", "a_to_b", "b_to_a"], (d) => t(`direction.${d}`));
    const add = element("button", {
      type: "button",
      class: "primary",
      id: "add-shape",
      text: t("setup.add_shape"),
      onclick: () => {
        if (!name.value.trim()) return name.focus();
        if (kind === "zone") shapes.zones.push({ name: name.value.trim(), points: drawn, rules: [rule.value()] });
        else shapes.lines.push({ name: name.value.trim(), points: drawn, direction: direction.value });
        form.replaceChildren();
        pending = null;
        redraw();
      },
    });
    direction.addEventListener("change", () => redraw());
    pending = { kind, points: drawn, direction: () => direction.value };
    form.replaceChildren(field("shape-name", name), ...(rule ? [rule] : [field("direction", direction)]), add);
    tool = null;
    points = [];
    redraw();
  };

  drawing.addEventListener("click", (click) => {
    if (!tool) return;
    points.push(fraction(click, drawing));
    if (tool === "line" && points.length === 2) finish();
    else redraw();
  });
  const start = (kind) => () => {
    tool = kind;
    points = [];
    pending = null;
    form.replaceChildren();
    hint.textContent = t(`setup.hint_${kind}`);
    redraw();
  };
  const tools = element(
    "div",
    { class: "tools" },
    element("button", { type: "button", "data-tool": "zone", text: t("setup.draw_zone"), onclick: start("zone") }),
    element("button", { type: "button", "data-tool": "line", text: t("setup.draw_line"), onclick: start("line") }),
    element("button", { type: "button", id: "finish-zone", text: t("setup.finish"), onclick: finish }),
    element("button", { type: "button", text: t("setup.undo"), onclick: () => { points.pop(); redraw(); } }),
  );
  redraw();
  const editor = element(
    "div",
    { class: "editor" },
    element("div", { class: "canvas" }, image, drawing),
    element("div", { class: "side" }, tools, hint, form, list),
  );
  // What to save: the schedules of shapes drawn here are in the camera's site's time zone.
  editor.shapes = (timezone) => ({
    zones: shapes.zones.map((zone) => ({ ...zone, rules: zone.rules?.map((rule) => ({ timezone, ...rule })) })),
    lines: shapes.lines.map((line) => ({ timezone, ...line })),
  });
  return editor;
}

function arrowHead() {
  return svg(
    "defs",
    {},
    svg("marker", { id: "arrow", viewBox: "0 0 10 10", refX: "8", refY: "5", markerWidth: "6", markerHeight: "6", orient: "auto-start-reverse" },
      svg("path", { d: "M0,0 L10,5 L0,10 z", class: "arrow-head" })),
  );
}

// A tripwire from A to B, and an arrow across it for the crossings it counts: walking from
// A to B, a_to_b is a crossing from the left side to the right side (analytics' rule).
function lineMarks(line) {
  const [[ax, ay], [bx, by]] = line.points;
  const length = Math.hypot(bx - ax, by - ay) || 1;
  const [nx, ny] = [-(by - ay) / length, (bx - ax) / length]; // towards the right side
  const [mx, my] = [(ax + bx) / 2, (ay + by) / 2];
  const reach = 0.06;
  const direction = line.direction ?? "both";
  const sign = direction === "b_to_a" ? -1 : 1;
  const across = {
    class: "crossing",
    x1: (mx - sign * nx * reach) * 1000, y1: (my - sign * ny * reach) * 1000,
    x2: (mx + sign * nx * reach) * 1000, y2: (my + sign * ny * reach) * 1000,
    "marker-end": "url(#arrow)",
  };
  if (direction === "both") across["marker-start"] = "url(#arrow)";
  return [
    svg("line", { class: "tripwire", x1: ax * 1000, y1: ay * 1000, x2: bx * 1000, y2: by * 1000 }),
    svg("line", across),
    svg("text", { x: ax * 1000, y: ay * 1000 - 10, class: "end", text: "A" }),
    svg("text", { x: bx * 1000, y: by * 1000 - 10, class: "end", text: "B" }),
  ];
}

function failure(place, message) {
  place.textContent = message;
  place.hidden = false;
}

// #/cameras/new: the stream's details, a probe showing what it sends, then zones and save.
export async function showNewCamera(sites) {
  const siteIds = Object.keys(sites);
  const form = element(
    "form",
    { id: "camera-form", class: "card camera-form" },
    element("h2", { text: t("setup.new_camera") }),
    field("id", input("id", { required: "", pattern: "[a-z0-9][a-z0-9_\\-]*", maxlength: "64", title: t("setup.id_rule") })),
    field("name", input("name", { maxlength: "128" })),
    field("site", select("site", siteIds, (id) => sites[id].name)),
    field("url", input("url", { required: "", placeholder: "rtsp://192.168.1.64:554/Streaming/Channels/101" })),
    field("username", input("username", { autocomplete: "off" })),
    field("password", input("password", { type: "password", autocomplete: "new-password" })),
    field("transport", select("transport", ["tcp", "udp"], (x) => x.toUpperCase())),
  );
  const error = element("p", { class: "error", id: "setup-error", hidden: "" });
  const found = element("dl", { id: "probe-result", class: "probe-result" });
  const probeButton = element("button", { type: "submit", id: "probe", class: "primary", text: t("setup.probe") });
  const workspace = element("div", { class: "card workspace", id: "workspace", hidden: "" });
  form.append(element("div", { class: "tools" }, probeButton), error, found);
  view().replaceChildren(element("section", { class: "setup" }, form, workspace));
  if (!siteIds.length) return failure(error, t("setup.no_sites"));

  const stream = () => {
    const data = Object.fromEntries(new FormData(form).entries());
    const camera = { url: data.url.trim(), transport: data.transport };
    if (data.username) camera.username = data.username;
    if (data.password) camera.password = data.password;
    return { data, camera };
  };
  form.addEventListener("submit", async (submitted) => {
    submitted.preventDefault();
    error.hidden = true;
    found.replaceChildren();
    workspace.hidden = true;
    probeButton.disabled = true;
    probeButton.textContent = t("setup.probing");
    try {
      const { data, camera } = stream();  // the site's camera networks are where it may look
      const response = await api("/api/cameras/probe", { method: "POST", body: JSON.stringify({ ...camera, site: data.site }) });
      if (!response.ok) return failure(error, `${t("setup.probe_failed")}: ${await refusal(response)}`);
      const probe = await response.json();
      const facts = [
        ["codec", probe.codec],
        ["resolution", `${probe.width}×${probe.height}`],
        ["fps", probe.fps ? probe.fps.toFixed(1) : "?"],
      ];
      found.replaceChildren(...definitions(facts, (name) => t(`setup.${name}`), "fact"));
      const editor = shapeEditor(`data:image/jpeg;base64,${probe.snapshot_jpeg}`, {});
      const save = async () => {
        const { data, camera } = stream();
        const body = { ...camera, id: data.id, name: data.name, site: data.site, ...editor.shapes(sites[data.site].timezone) };
        const answer = await api("/api/cameras", { method: "POST", body: JSON.stringify(body) });
        if (!answer.ok) return failure(saveError, `${t("setup.save_failed")}: ${await refusal(answer)}`);
        location.hash = `#/cameras/${encodeURIComponent(data.id)}`;
      };
      const saveError = element("p", { class: "error", hidden: "" });
      workspace.replaceChildren(editor, saveError, element("button", { type: "button", id: "save", class: "primary", text: t("setup.save"), onclick: save }));
      workspace.hidden = false;
    } finally {
      probeButton.disabled = false;
      probeButton.textContent = t("setup.probe");
    }
  });
}

// #/cameras/{id}/edit: a saved camera's zones and lines over its latest picture.
export async function showEditCamera(id, sites) {
  const response = await api(`/api/cameras/${encodeURIComponent(id)}`);
  if (!response.ok) {
    view().replaceChildren(element("p", { class: "card error", id: "setup-error", text: await refusal(response) }));
    return;
  }
  const camera = await response.json();
  const editor = shapeEditor(`/api/cameras/${encodeURIComponent(id)}/picture?at=${Date.now()}`, camera.config);
  const error = element("p", { class: "error", id: "setup-error", hidden: "" });
  const save = async () => {
    const { zones, lines } = editor.shapes(sites[camera.site]?.timezone || "Asia/Shanghai");
    const body = {
      ...camera.config, id: camera.id, name: camera.name, site: camera.site, url: camera.url,
      enabled: camera.enabled, zones, lines,
      ...(camera.detect_url ? { detect_url: camera.detect_url } : {}),
    };
    const answer = await api(`/api/cameras/${encodeURIComponent(id)}`, { method: "PUT", body: JSON.stringify(body) });
    if (!answer.ok) return failure(error, `${t("setup.save_failed")}: ${await refusal(answer)}`);
    location.hash = `#/cameras/${encodeURIComponent(id)}`;
  };
  view().replaceChildren(
    element(
      "section",
      { class: "card workspace" },
      element("h2", { text: `${t("setup.edit_camera")} · ${camera.name || camera.id}` }),
      editor,
      error,
      element("button", { type: "button", id: "save", class: "primary", text: t("setup.save"), onclick: save }),
    ),
  );
}
