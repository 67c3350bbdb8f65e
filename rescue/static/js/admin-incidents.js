// Incidents: the records of the last 30 days (GET /v1/reports/incidents), newest first; one
// opened shows its timeline, offers and outcome (GET /v1/incidents/{id}) and its record.
import { all } from "./api.js";
import { $, dateTime, duration, fill, h } from "./dom.js";
import { districtName } from "./districts.js";
import { t } from "./i18n.js";
import { renderIncident } from "./incident-view.js";

const INTERVALS = ["alert_to_first_offer_s", "alert_to_first_acceptance_s", "alert_to_on_scene_s",
  "alert_to_first_compression_s", "alert_to_aed_on_scene_s", "alert_to_first_shock_s",
  "alert_to_ems_arrival_s"];

function recordView(record) {
  if (!record) return null;
  const row = (label, value) => [h("dt", {}, label), h("dd", {}, value)];
  return h("section", { class: "record" }, h("h3", {}, t("record.title")),
    h("dl", { class: "facts" },
      row(t("record.responders"), `${record.responders.accepted} / ${record.responders.offered}`),
      INTERVALS.filter((k) => record.intervals_s[k] != null)
        .map((k) => row(t(`record.${k}`), duration(record.intervals_s[k]))),
      row(t("record.shocks"), String(record.shocks ?? 0)),
      record.outcome.rosc != null ? row(t("outcome.rosc"), t(record.outcome.rosc ? "common.yes" : "common.no")) : null));
}

export class IncidentBrowser {
  constructor({ form, list, view, api }) {
    Object.assign(this, { form, list, view, api });
    this.records = [];
    form.addEventListener("submit", (e) => {
      e.preventDefault();
      this.open(form.elements.id.value.trim());
    });
    document.addEventListener("langchange", () => {
      this.renderList();
      if (this.current) this.show();
    });
  }

  async loadList() {
    try {
      this.records = (await all(this.api, "/v1/reports/incidents", {}, 5000)).reverse();
      this.error = null;
    } catch (err) {
      this.error = err;
    }
    this.renderList();
  }

  renderList() {
    if (this.error) return fill(this.list, h("li", { class: "hint" }, t("incident.lookup_hint")));
    fill(this.list, this.records.slice(0, 200).map((r) => h("li", { "data-incident": r.incident_id },
      h("button", { type: "button", class: "link", onclick: () => this.open(r.incident_id) },
        `${dateTime(r.times.alert)} · ${r.external_id}`),
      h("span", { class: `badge incident-${r.status}` }, t(`istatus.${r.status}`)),
      r.exercise ? h("span", { class: "badge exercise" }, t("incident.exercise")) : null,
      h("small", {}, `${districtName(r.district)} · ${r.responders.accepted}/${r.responders.offered}`))));
    if (!this.records.length) fill(this.list, h("li", { class: "hint" }, t("incident.none")));
  }

  async open(id) {
    if (!id) return;
    $("input", this.form).value = id;
    try {
      this.current = await this.api.get(`/v1/incidents/${encodeURIComponent(id)}`);
      this.show();
    } catch (err) {
      this.current = null;
      fill(this.view, h("p", { class: "error" }, err.message));
    }
  }

  show() {
    renderIncident(this.view, this.current);
    const record = this.records.find((r) => r.incident_id === this.current.incident_id);
    this.view.append(recordView(record) || "");
  }
}
