// What every view uses: the API (with the session's CSRF token) and building elements.
import { t } from "./i18n.js";

function csrf() {
  const found = document.cookie.split("; ").find((c) => c.startsWith("xl_csrf="));
  return found ? found.slice("xl_csrf=".length) : "";
}

// A call of the API in the session; a 401 (session over) tells the console to log in again.
export async function api(path, options = {}) {
  const method = options.method || "GET";
  const headers = { ...(options.body ? { "Content-Type": "application/json" } : {}) };
  if (method !== "GET") headers["X-CSRF-Token"] = csrf();
  const response = await fetch(path, { ...options, method, headers, credentials: "same-origin" });
  if (response.status === 401) {
    window.dispatchEvent(new Event("session-ended"));
    throw new Error("unauthorized");
  }
  return response;
}

// The API's reason for refusing a call ({"error": {"message", "fields"}}), for the user.
export async function refusal(response) {
  try {
    const { error } = await response.json();
    const fields = (error.fields || []).map((field) => `${field.location}: ${field.message}`);
    return [error.message, ...fields].join("; ");
  } catch {
    return `HTTP ${response.status}`;
  }
}

export function element(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (name === "text") node.textContent = value;
    else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value);
  }
  node.append(...children);
  return node;
}

// A drop-down of `values`, each shown as `label(value)`.
export function selectOf(name, values, label, attributes = {}) {
  return element("select", { name, ...attributes }, ...values.map((value) => element("option", { value, text: label(value) })));
}

// A filter's drop-down: "all" (no value) first, then `values`; `current` chosen.
export function filterChoice(name, values, label, current) {
  const all = t(`filter.${name}`);
  const select = selectOf(name, ["", ...values], (value) => (value ? label(value) : all), { "aria-label": all });
  select.value = current || "";
  return select;
}

// The terms and values of a definition list: each value marked `data-{mark}` with its name.
export function definitions(pairs, term, mark) {
  return pairs.flatMap(([name, value]) => [element("dt", { text: term(name) }), element("dd", { [`data-${mark}`]: name, text: value })]);
}

export function svg(tag, attributes = {}, ...children) {
  const node = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (name === "text") node.textContent = value;
    else node.setAttribute(name, value);
  }
  node.append(...children);
  return node;
}

export function view() {
  return document.getElementById("view");
}
