// Tiny DOM helpers: build elements, find them, format values.

/** h("div", {class: "x", onclick: f}, child, "text") -> Element */
export function h(tag, attrs = {}, ...children) {
  return build(document.createElement(tag), attrs, children);
}

/** s("circle", {cx: 1}) -> an SVG element */
export function s(tag, attrs = {}, ...children) {
  return build(document.createElementNS("http://www.w3.org/2000/svg", tag), attrs, children);
}

function build(el, attrs, children) {
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith("on") && typeof value === "function") {
      el.addEventListener(key.slice(2), value);
    } else if (key === "dataset") {
      Object.assign(el.dataset, value);
    } else {
      el.setAttribute(key, value === true ? "" : String(value));
    }
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

/** Replace an element's children. */
export function fill(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

export const $ = (selector, root = document) => root.querySelector(selector);
export const $$ = (selector, root = document) => [...root.querySelectorAll(selector)];

/** "3 min 05 s" style durations (seconds may be null). */
export function duration(seconds) {
  if (seconds === null || seconds === undefined) return "–";
  const s = Math.max(0, Math.round(seconds));
  const m = Math.floor(s / 60);
  return m ? `${m}:${String(s % 60).padStart(2, "0")}` : `${s} s`;
}

export function metres(m) {
  if (m === null || m === undefined) return "–";
  return m >= 1000 ? `${(m / 1000).toFixed(1)} km` : `${Math.round(m)} m`;
}

let zone;
/** The deployment's zone, for times shown (set once from /ui/config.json). */
export const setZone = (z) => (zone = z);

/** A timestamp as local clock time (HH:MM:SS) in the deployment's zone. */
export function clock(iso, timeZone = zone) {
  if (!iso) return "–";
  return new Date(iso).toLocaleTimeString("en-GB", { timeZone, hour12: false });
}

export function dateTime(iso, timeZone = zone) {
  if (!iso) return "–";
  return new Date(iso).toLocaleString("sv-SE", { timeZone }).slice(0, 16);
}
