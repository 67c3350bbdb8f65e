// The administrator's map: every AED coloured by status, filled when available now.
import { all } from "./api.js";
import { fill, h, s } from "./dom.js";
import { availability, localNow } from "./hours.js";
import { t } from "./i18n.js";
import { MapView } from "./map.js";

export const STATES = ["available", "closed", "unknown", "expired", "maintenance", "missing"];

export class AedMap {
  constructor(container, api, config, { onAed, onEmpty, legend }) {
    this.api = api;
    this.config = config;
    this.legend = legend;
    this.aeds = new Map();
    this.map = new MapView(container, {
      onPin: (id) => onAed(this.aeds.get(id)),
      onClick: (lat, lng) => onEmpty(lat, lng),
    });
    document.addEventListener("langchange", () => this.drawLegend());
  }

  async load() {
    await this.map.ready;
    const items = await all(this.api, "/v1/aeds", { status: "active,maintenance,missing" });
    this.aeds = new Map(items.map((a) => [a.id, a]));
    this.draw();
  }

  upsert(aed) {
    if (aed.status === "retired") this.aeds.delete(aed.id);
    else this.aeds.set(aed.id, aed);
    this.draw();
  }

  draw() {
    const now = localNow(this.config.timezone);
    this.counts = Object.fromEntries(STATES.map((state) => [state, 0]));
    this.map.clear("aeds");
    for (const aed of this.aeds.values()) {
      const state = availability(aed, now);
      this.counts[state] = (this.counts[state] || 0) + 1;
      this.map.pin("aeds", aed.location.lat, aed.location.lng, {
        px: 3.5, id: aed.id, cls: `aed status-${aed.status} now-${state}`,
        title: `${aed.name} · ${t(`status.${aed.status}`)} · ${t(`now.${state}`)}`,
      });
    }
    this.drawLegend();
  }

  drawLegend() {
    if (!this.counts) return;
    fill(this.legend, STATES.map((state) => h("li", { "data-state": state },
      s("svg", { class: "swatch", viewBox: "0 0 10 10" },
        s("circle", { cx: 5, cy: 5, r: 4, class: `aed ${swatchClass(state)}` })),
      `${t(`now.${state}`)}: `, h("b", {}, String(this.counts[state])))));
  }
}

function swatchClass(state) {
  return STATES.indexOf(state) > 3 ? `status-${state} now-${state}` : `status-active now-${state}`;
}
