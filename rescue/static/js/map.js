// An offline map: the shipped district boundaries drawn as SVG, with pins, circles and lines.
// Equirectangular projection in metres around the area's centre (x scaled by cos(lat)).
import { h, s } from "./dom.js";
import { nameOf } from "./i18n.js";

const M_PER_DEG = (6371008.8 * Math.PI) / 180;
const LAYERS = ["districts", "areas", "lines", "aeds", "labels", "plan", "marks"];
let districtsPromise = null;

function loadDistricts() {
  districtsPromise ??= fetch("/ui/districts.geojson").then((r) => r.json());
  return districtsPromise;
}

export class MapView {
  /** container: an element to fill; onClick(lat, lng) for clicks on the map (not drags). */
  constructor(container, { onClick = null, onPin = null } = {}) {
    this.onClick = onClick;
    this.onPin = onPin;
    this.svg = s("svg", { class: "map-svg", role: "img" });
    this.layers = {};
    for (const name of LAYERS) this.svg.append((this.layers[name] = s("g", { class: name })));
    const zoom = (f) => () => this.zoomBy(f);
    const controls = h("div", { class: "map-controls" },
      h("button", { type: "button", onclick: zoom(1 / 1.6), title: "+" }, "+"),
      h("button", { type: "button", onclick: zoom(1.6), title: "−" }, "−"),
      h("button", { type: "button", onclick: () => this.fit(), title: "⤢" }, "⤢"));
    container.classList.add("map");
    container.append(this.svg, controls);
    this.container = container;
    this.view = { x: 0, y: 0, w: 1, h: 1 };
    this._wire();
    this.ready = this._load();
    new ResizeObserver(() => this._rescale()).observe(this.svg);
  }

  async _load() {
    const fc = await loadDistricts();
    let [minLat, minLng, maxLat, maxLng] = [90, 180, -90, -180];
    for (const f of fc.features) {
      for (const ring of rings(f.geometry)) {
        for (const [lng, lat] of ring) {
          minLat = Math.min(minLat, lat); maxLat = Math.max(maxLat, lat);
          minLng = Math.min(minLng, lng); maxLng = Math.max(maxLng, lng);
        }
      }
    }
    this.lat0 = (minLat + maxLat) / 2;
    this.lng0 = (minLng + maxLng) / 2;
    this.kx = Math.cos((this.lat0 * Math.PI) / 180) * M_PER_DEG;
    const [x0, y1] = this.project(minLat, minLng);
    const [x1, y0] = this.project(maxLat, maxLng);
    this.home = { x: x0, y: y0, w: x1 - x0, h: y1 - y0 };
    this.features = fc.features;
    this._drawDistricts();
    this.fit();
    document.addEventListener("langchange", () => this._drawLabels());
  }

  project(lat, lng) {
    return [(lng - this.lng0) * this.kx, -(lat - this.lat0) * M_PER_DEG];
  }

  unproject(x, y) {
    return [this.lat0 - y / M_PER_DEG, this.lng0 + x / this.kx];
  }

  _drawDistricts() {
    const g = this.layers.districts;
    g.replaceChildren();
    for (const f of this.features) {
      const d = rings(f.geometry)
        .map((ring) => "M" + ring.map(([lng, lat]) => this.project(lat, lng).map(round).join(",")).join("L") + "Z")
        .join("");
      g.append(s("path", { d, class: "district", "data-adcode": f.properties.adcode },
        s("title", {}, f.properties.name)));
    }
    this._drawLabels();
  }

  _drawLabels() {
    const g = this.layers.labels;
    g.replaceChildren();
    for (const f of this.features) {
      const [lat, lng] = f.properties.label ? [f.properties.label[1], f.properties.label[0]] : labelPoint(f.geometry);
      this.label("labels", lat, lng, nameOf(f.properties), { px: 12, cls: "district-label" });
    }
  }

  /** Show a box of the world (metres); the SVG keeps its aspect ratio. */
  setView(v) {
    this.view = v;
    this.svg.setAttribute("viewBox", [v.x, v.y, v.w, v.h].map(round).join(" "));
    this._rescale();
  }

  fit() {
    const m = this.home;
    this.setView({ x: m.x - m.w * 0.02, y: m.y - m.h * 0.02, w: m.w * 1.04, h: m.h * 1.04 });
  }

  /** Centre on a point, showing `radius` metres around it. */
  focus(lat, lng, radius = 1500) {
    const [x, y] = this.project(lat, lng);
    this.setView({ x: x - radius, y: y - radius, w: 2 * radius, h: 2 * radius });
  }

  zoomBy(factor, cx, cy) {
    const v = this.view;
    cx ??= v.x + v.w / 2;
    cy ??= v.y + v.h / 2;
    const w = Math.min(Math.max(v.w * factor, 200), this.home.w * 3);
    const f = w / v.w;
    this.setView({ x: cx - (cx - v.x) * f, y: cy - (cy - v.y) * f, w, h: v.h * f });
  }

  /** World units per screen pixel (the SVG is letter-boxed: "meet"). */
  unitsPerPx() {
    const r = this.svg.getBoundingClientRect();
    if (!r.width || !r.height) return this.view.w / 800;
    return Math.max(this.view.w / r.width, this.view.h / r.height);
  }

  _rescale() {
    const u = this.unitsPerPx();
    for (const el of this.svg.querySelectorAll("[data-px]")) {
      const px = Number(el.dataset.px) * u;
      if (el.tagName === "text") el.setAttribute("font-size", round(px));
      else el.setAttribute("r", round(px));
    }
  }

  /** Client (screen) coordinates -> world metres. */
  toWorld(clientX, clientY) {
    const p = new DOMPoint(clientX, clientY).matrixTransform(this.svg.getScreenCTM().inverse());
    return [p.x, p.y];
  }

  /** A point's position on the screen (page coordinates), e.g. to click it. */
  screenPoint(lat, lng) {
    const [x, y] = this.project(lat, lng);
    const p = new DOMPoint(x, y).matrixTransform(this.svg.getScreenCTM());
    return { x: p.x, y: p.y };
  }

  _wire() {
    let drag = null;
    this.svg.addEventListener("pointerdown", (e) => {
      drag = { x: e.clientX, y: e.clientY, view: { ...this.view }, moved: false, id: e.pointerId };
    });
    this.svg.addEventListener("pointermove", (e) => {
      if (!drag || drag.id !== e.pointerId) return;
      const dx = e.clientX - drag.x;
      const dy = e.clientY - drag.y;
      if (!drag.moved && Math.hypot(dx, dy) < 5) return;
      if (!drag.moved) this.svg.setPointerCapture(e.pointerId);
      drag.moved = true;
      const u = this.unitsPerPx();
      this.setView({ ...drag.view, x: drag.view.x - dx * u, y: drag.view.y - dy * u });
    });
    this.svg.addEventListener("pointerup", (e) => {
      if (!drag) return;
      const wasDrag = drag.moved;
      drag = null;
      if (wasDrag) return;
      const pin = e.target.closest("[data-pin]");
      if (pin && this.onPin) return this.onPin(pin.dataset.pin, pin);
      if (this.onClick) {
        const [x, y] = this.toWorld(e.clientX, e.clientY);
        this.onClick(...this.unproject(x, y));
      }
    });
    this.svg.addEventListener("pointercancel", () => (drag = null));
    this.svg.addEventListener("wheel", (e) => {
      e.preventDefault();
      const [x, y] = this.toWorld(e.clientX, e.clientY);
      this.zoomBy(e.deltaY > 0 ? 1.25 : 0.8, x, y);
    }, { passive: false });
  }

  clear(layer) {
    this.layers[layer].replaceChildren();
  }

  /** A dot of `px` screen pixels; `id` makes it clickable (onPin). */
  pin(layer, lat, lng, { px = 4, cls = "", title = "", id = null } = {}) {
    const [cx, cy] = this.project(lat, lng);
    const el = s("circle", { cx: round(cx), cy: round(cy), r: round(px * this.unitsPerPx()),
      class: cls, "data-px": px, "data-pin": id }, title ? s("title", {}, title) : null);
    this.layers[layer].append(el);
    return el;
  }

  /** A circle of `radius` metres on the ground. */
  circle(layer, lat, lng, radius, { cls = "" } = {}) {
    const [cx, cy] = this.project(lat, lng);
    const rx = (radius * M_PER_DEG * Math.cos((lat * Math.PI) / 180)) / this.kx;
    const el = s("ellipse", { cx: round(cx), cy: round(cy), rx: round(rx), ry: round(radius), class: cls });
    this.layers[layer].append(el);
    return el;
  }

  line(layer, points, { cls = "" } = {}) {
    const pts = points.map(([lat, lng]) => this.project(lat, lng).map(round).join(",")).join(" ");
    const el = s("polyline", { points: pts, class: cls });
    this.layers[layer].append(el);
    return el;
  }

  label(layer, lat, lng, text, { px = 12, cls = "", dy = 0 } = {}) {
    const [x, y] = this.project(lat, lng);
    const u = this.unitsPerPx();
    const el = s("text", { x: round(x), y: round(y), dy: `${dy}em`, "font-size": round(px * u),
      "data-px": px, class: cls }, text);
    this.layers[layer].append(el);
    return el;
  }
}

const round = (v) => Math.round(v * 10) / 10;

function rings(geometry) {
  if (geometry.type === "Polygon") return geometry.coordinates;
  if (geometry.type === "MultiPolygon") return geometry.coordinates.flat();
  return [];
}

/** Where to write a district's name: the centre of its largest ring's vertices. */
function labelPoint(geometry) {
  const polys = geometry.type === "Polygon" ? [geometry.coordinates] : geometry.coordinates;
  const outer = polys.map((p) => p[0]).sort((a, b) => b.length - a.length)[0];
  const sum = outer.reduce(([a, b], [lng, lat]) => [a + lat, b + lng], [0, 0]);
  return [sum[0] / outer.length, sum[1] / outer.length];
}
