// After accepting: where the patient is, the AED to fetch, the metronome, the status markers
// (each becomes an entry of the incident's timeline) and the guidance session.
import { Metronome } from "./audio.js";
import { $, fill, h, metres } from "./dom.js";
import { GuidancePanel } from "./guidance.js";
import { t } from "./i18n.js";

export const MARKERS = ["arrived", "aed_collected", "aed_arrived", "cpr_started", "pads_attached",
  "shock_delivered", "rosc", "handed_over", "withdrawn"];
const ENDING = new Set(["handed_over", "withdrawn"]);
const DEFAULT_CADENCE = 110;

export class Mission {
  constructor({ root, map, api, offer, position, say }) {
    Object.assign(this, { root, map, api, offer, position, say });
    this.done = new Set();
    this.cadence = DEFAULT_CADENCE;
    this.metronome = new Metronome(() => this.pulse());
    this.guidance = new GuidancePanel($("#guidance", root), { onMetronome: (m) => this.follow(m) });
    this.toggle = $("#metronome-toggle", root);
    this.toggle.onclick = () => (this.metronome.running ? this.stopBeat() : this.startBeat());
    this.render();
    this.draw();
    if (offer.guidance) this.guidance.join(offer.guidance.session_id, offer.guidance.token);
    else fill($("#guidance", root), h("p", { class: "hint" }, t("guidance.none")));
    this.onLang = () => this.render();
    document.addEventListener("langchange", this.onLang);
    root.hidden = false;
    root.scrollIntoView({ block: "start" });
  }

  render() {
    const o = this.offer;
    const where = o.incident?.location;
    const aed = o.role === "aed" ? o.aed : null;
    fill($("#mission-head", this.root),
      h("h2", {}, t(`mission.title_${o.role}`)),
      this.ended ? h("p", { class: "closed-banner" }, this.ended) : null,
      h("dl", { class: "facts" },
        h("dt", {}, t("mission.patient")),
        h("dd", { class: "patient-where" }, o.incident?.address || "–",
          where ? h("small", { class: "mono" }, `${where.lat.toFixed(5)}, ${where.lng.toFixed(5)}`) : null),
        aed ? [h("dt", {}, t("mission.aed")), h("dd", { class: "aed-to-fetch" }, aed.name,
          h("small", {}, [aed.address, aed.level != null ? `${t("aed.level")} ${aed.level}` : null,
            aed.access_note].filter(Boolean).join(" · ")))] : null,
        h("dt", {}, t("offer.distance")), h("dd", {}, metres(o.distance_m))));
    fill($("#markers", this.root), MARKERS.map((m) => h("button", {
      type: "button", "data-marker": m, class: this.done.has(m) ? "done" : "",
      disabled: Boolean(this.ended), onclick: () => this.mark(m),
    }, t(`marker.${m}`))));
    $("#cadence", this.root).textContent = String(this.cadence);
    this.toggle.textContent = t(this.metronome.running ? "metronome.stop" : "metronome.start");
  }

  /** Me -> AED -> patient on the map, and the map centred on them. */
  draw() {
    const where = this.offer.incident?.location;
    if (!where) return;
    for (const layer of ["plan", "lines"]) this.map.clear(layer);
    const aed = this.offer.role === "aed" ? this.offer.aed?.location : null;
    const route = [this.position, aed, where].filter(Boolean).map((p) => [p.lat, p.lng]);
    if (route.length > 1) this.map.line("lines", route, { cls: "fetch-route" });
    if (aed) this.map.pin("plan", aed.lat, aed.lng, { px: 8, cls: "plan-aed fetching", title: this.offer.aed.name });
    this.map.pin("plan", where.lat, where.lng, { px: 9, cls: "patient", title: t("plan.patient") });
    const far = Math.max(300, ...route.map(([lat, lng]) => distanceM(lat, lng, where.lat, where.lng)));
    this.map.focus(where.lat, where.lng, far * 1.3);
  }

  async mark(marker) {
    try {
      await this.api.post(`/v1/me/offers/${encodeURIComponent(this.offer.id)}/status`, { status: marker });
      this.done.add(marker);
      this.say(t(`marker.${marker}`));
      if (marker === "cpr_started") this.startBeat();
      if (ENDING.has(marker)) this.closed({ reason: t(`marker.${marker}`) });
      this.render();
    } catch (err) {
      this.say(err.message);
    }
  }

  /** The session's step says whether compressions run now, and at which cadence. */
  follow({ on, perMinute }) {
    if (perMinute) this.cadence = Math.round(perMinute);
    if (on === true || (on === null && this.metronome.running)) this.metronome.start(this.cadence);
    else if (on === false) this.metronome.stop();
    this.render();
  }

  startBeat() {
    this.metronome.start(this.cadence);
    this.render();
  }

  stopBeat() {
    this.metronome.stop();
    this.render();
  }

  pulse() {
    const beat = $("#beat", this.root);
    beat.classList.remove("pulse");
    void beat.offsetWidth; // restart the animation
    beat.classList.add("pulse");
  }

  update(offer) {
    this.offer = { ...this.offer, state: offer.state };
    if (!["accepted"].includes(offer.state)) this.closed({ reason: t(`ostate.${offer.state}`) });
  }

  closed(msg) {
    this.ended = msg.status ? `${t(`istatus.${msg.status}`)} · ${msg.reason || ""}` : msg.reason;
    this.metronome.stop();
    this.guidance.leave();
    this.render();
  }

  end() {
    this.metronome.stop();
    this.guidance.leave();
    document.removeEventListener("langchange", this.onLang);
    this.root.hidden = true;
  }
}

function distanceM(lat1, lng1, lat2, lng2) {
  const r = Math.PI / 180;
  const x = (lng2 - lng1) * r * Math.cos(((lat1 + lat2) / 2) * r);
  return Math.hypot(x, (lat2 - lat1) * r) * 6371008.8;
}
