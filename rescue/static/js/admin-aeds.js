// The inventory table: searched and filtered by the API (q, status, district), paged.
import { $, fill, h } from "./dom.js";
import { districtName, districtOptions } from "./districts.js";
import { availability, localNow } from "./hours.js";
import { t } from "./i18n.js";
import { STATUSES } from "./aed-form.js";

export class AedTable {
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
    const status = this.form.elements.status;
    const district = this.form.elements.district;
    const [s, d] = [status.value, district.value];
    fill(status, h("option", { value: "" }, t("filter.all_statuses")),
      STATUSES.map((v) => h("option", { value: v }, t(`status.${v}`))));
    fill(district, districtOptions(t("filter.all_districts")));
    [status.value, district.value] = [s, d];
    this.render();
  }

  params() {
    const f = this.form.elements;
    return { q: f.q.value.trim(), status: f.status.value, district: f.district.value, limit: 50 };
  }

  async reload() {
    this.rows = [];
    this.cursor = null;
    await this.page();
  }

  async page() {
    try {
      const data = await this.api.get("/v1/aeds", { ...this.params(), cursor: this.cursor });
      this.rows.push(...data.items);
      this.cursor = data.next_cursor;
      this.error = null;
    } catch (err) {
      this.error = err;
    }
    this.render();
  }

  render() {
    const now = localNow(this.config.timezone);
    const body = $("tbody", this.table);
    if (this.error) {
      fill(body, h("tr", {}, h("td", { colspan: 8, class: "error" }, this.error.message)));
      return;
    }
    fill(body, this.rows.map((a) => {
      const state = availability(a, now);
      return h("tr", { "data-id": a.id, onclick: () => this.onPick(a) },
        h("td", {}, a.name), h("td", {}, districtName(a.district)),
        h("td", {}, h("span", { class: `badge status-${a.status}` }, t(`status.${a.status}`))),
        h("td", {}, h("span", { class: `badge now-${state}` }, t(`now.${state}`))),
        h("td", {}, t(`venue.${a.venue_type}`)), h("td", { class: "mono" }, a.opening_hours),
        h("td", {}, a.pads_expire_on || "–"), h("td", {}, a.battery_expire_on || "–"));
    }));
    if (!this.rows.length) fill(body, h("tr", {}, h("td", { colspan: 8 }, t("list.empty"))));
    this.more.hidden = !this.cursor;
  }
}
