// The maintenance list and the volunteers with their certificates.
import { $, fill, h } from "./dom.js";
import { districtName, districtOptions } from "./districts.js";
import { localNow } from "./hours.js";
import { t } from "./i18n.js";

export function setupMaintenance(form, table, api, onPick) {
  const load = async () => {
    const body = $("tbody", table);
    try {
      const data = await api.get("/v1/aeds/maintenance", { within_days: form.elements.within_days.value });
      fill(body, data.items.map(({ aed, problems }) => h("tr", { "data-id": aed.id, onclick: () => onPick(aed) },
        h("td", {}, aed.name), h("td", {}, districtName(aed.district)),
        h("td", {}, h("span", { class: `badge status-${aed.status}` }, t(`status.${aed.status}`))),
        h("td", {}, h("ul", { class: "problems" }, problems.map((p) => h("li", {}, p)))))));
      if (!data.items.length) fill(body, h("tr", {}, h("td", { colspan: 4 }, t("list.empty"))));
    } catch (err) {
      fill(body, h("tr", {}, h("td", { colspan: 4, class: "error" }, err.message)));
    }
  };
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    load();
  });
  return load;
}

const VOL_STATUSES = ["active", "suspended"];
const CERTIFICATE = ["valid", "expiring", "expired"];

export class VolunteerTable {
  constructor({ form, table, more, api, config, onPick }) {
    Object.assign(this, { form, table, more, api, config, onPick });
    this.rows = [];
    form.addEventListener("submit", (e) => {
      e.preventDefault();
      this.reload();
    });
    more.addEventListener("click", () => this.page());
    document.addEventListener("langchange", () => this.labels());
    this.labels();
  }

  labels() {
    const f = this.form.elements;
    const keep = [f.status.value, f.certificate.value, f.district.value];
    fill(f.status, h("option", { value: "" }, t("filter.all_statuses")),
      VOL_STATUSES.map((v) => h("option", { value: v }, t(`vstatus.${v}`))));
    fill(f.certificate, h("option", { value: "" }, t("filter.all_certificates")),
      CERTIFICATE.map((v) => h("option", { value: v }, t(`cert.${v}`))));
    fill(f.district, districtOptions(t("filter.all_districts")));
    [f.status.value, f.certificate.value, f.district.value] = keep;
    this.render();
  }

  async reload() {
    this.rows = [];
    this.cursor = null;
    await this.page();
  }

  async page() {
    const f = this.form.elements;
    const params = { q: f.q.value.trim(), status: f.status.value, certificate: f.certificate.value,
      district: f.district.value, limit: 50, cursor: this.cursor };
    try {
      const data = await this.api.get("/v1/volunteers", params);
      this.rows.push(...data.items);
      this.cursor = data.next_cursor;
      this.error = null;
    } catch (err) {
      this.error = err;
    }
    this.render();
  }

  render() {
    const body = $("tbody", this.table);
    if (this.error) {
      fill(body, h("tr", {}, h("td", { colspan: 8, class: "error" }, this.error.message)));
      return;
    }
    const today = localNow(this.config.timezone).date;
    fill(body, this.rows.map((v) => {
      const c = v.certificate;
      const state = c.expires_on < today ? "expired" : "valid";
      return h("tr", { "data-id": v.id, title: districtName(v.home_district), onclick: () => this.onPick(v) },
        h("td", {}, v.name), h("td", { class: "mono" }, v.phone),
        h("td", {}, h("span", { class: `badge vstatus-${v.status}` }, t(`vstatus.${v.status}`))),
        h("td", {}, t(`mode.${v.travel_mode}`)), h("td", { class: "mono" }, c.number),
        h("td", {}, c.issuer), h("td", {}, h("span", { class: `badge cert-${state}` }, c.expires_on)),
        h("td", {}, v.quiet_hours || "–"));
    }));
    if (!this.rows.length) fill(body, h("tr", {}, h("td", { colspan: 8 }, t("list.empty"))));
    this.more.hidden = !this.cursor;
  }
}
