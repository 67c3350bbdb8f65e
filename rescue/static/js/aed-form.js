// Create and edit an AED in a dialog. The API validates: its messages are shown next to the
// fields they name (the same words a client of the API gets).
import { fill, h } from "./dom.js";
import { DialogForm, changed, field as labelled, input, select, showProblems } from "./forms.js";
import { applyI18n, t } from "./i18n.js";

export const VENUE_TYPES = ["factory", "office", "mall", "transit", "school", "hospital", "hotel",
  "government", "sports", "residential", "public", "other"];
export const STATUSES = ["active", "maintenance", "missing", "retired"];
const CRS = ["wgs84", "gcj02", "bd09"];
const TEXT = ["name", "address", "access_note", "opening_hours", "model", "serial_no"];
const DATES = ["pads_expire_on", "battery_expire_on", "last_inspected_on"];

const field = (name, control, label = `aed.${name}`) => labelled(name, control, label);

function controls() {
  return [
    field("name", input("name", { required: true })),
    field("address", input("address")),
    h("fieldset", { class: "field location", "data-field": "location" },
      h("legend", { "data-i18n": "aed.location" }),
      field("location.lat", input("lat", { inputmode: "decimal" }), "geo.lat"),
      field("location.lng", input("lng", { inputmode: "decimal" }), "geo.lng"),
      field("location.crs", select("crs", CRS, "crs"), "geo.crs"),
      h("small", { class: "problem" })),
    field("venue_type", select("venue_type", VENUE_TYPES, "venue")),
    field("indoor", h("select", { name: "indoor" }, ["", "true", "false"].map((v) =>
      h("option", { value: v, "data-i18n": `indoor.${v || "unknown"}` })))),
    field("level", input("level", { inputmode: "numeric" })),
    field("access_note", input("access_note")),
    field("opening_hours", input("opening_hours", { placeholder: "24/7" })),
    field("status", select("status", STATUSES, "status")),
    field("model", input("model")),
    field("serial_no", input("serial_no")),
    ...DATES.map((d) => field(d, input(d, { type: "date" }))),
    field("owner.name", input("owner_name"), "aed.owner_name"),
    field("owner.phone", input("owner_phone", { type: "tel" }), "aed.owner_phone"),
  ];
}

const number = (raw) => (raw === "" ? null : Number.isFinite(Number(raw)) ? Number(raw) : raw);

/** The form's values as an API body (null for empty). */
function read(form) {
  const v = (name) => form.elements[name].value.trim();
  const body = {};
  for (const key of TEXT) body[key] = v(key) || null;
  for (const key of DATES) body[key] = v(key) || null;
  body.location = { lat: number(v("lat")), lng: number(v("lng")), crs: v("crs") };
  body.venue_type = v("venue_type");
  body.status = v("status");
  body.indoor = v("indoor") === "" ? null : v("indoor") === "true";
  body.level = number(v("level"));
  const owner = { name: v("owner_name") || null, phone: v("owner_phone") || null };
  body.owner = owner.name || owner.phone ? owner : null;
  return body;
}

function write(form, aed) {
  const set = (name, value) => (form.elements[name].value = value ?? "");
  for (const key of [...TEXT, ...DATES, "venue_type", "status", "level"]) set(key, aed[key]);
  set("lat", aed.location?.lat);
  set("lng", aed.location?.lng);
  set("crs", aed.location?.crs || "wgs84");
  set("indoor", aed.indoor === null || aed.indoor === undefined ? "" : String(aed.indoor));
  set("owner_name", aed.owner?.name);
  set("owner_phone", aed.owner?.phone);
}

export class AedForm extends DialogForm {

  /** Open for a new AED (aed null; `at` prefills the location) or to edit one. */
  open(aed, at = null) {
    this.aed = aed;
    const title = h("h2", { "data-i18n": aed ? "aeds.edit" : "aeds.new" });
    const buttons = h("div", { class: "buttons" },
      h("button", { class: "primary", "data-i18n": "form.save" }),
      aed ? h("button", { type: "button", class: "danger", "data-i18n": "aeds.retire",
        onclick: () => this.retire() }) : null,
      h("button", { type: "button", "data-i18n": "form.cancel", onclick: () => this.dialog.close() }));
    fill(this.form, title, h("p", { class: "error", role: "alert" }),
      h("div", { class: "form-grid" }, controls()), buttons);
    applyI18n(this.form);
    write(this.form, aed || { status: "active", venue_type: "other", location: at && { lat: round6(at.lat), lng: round6(at.lng) } });
    this.original = read(this.form);
    this.dialog.showModal();
  }

  showErrors(err) {
    showProblems(this.form, err);
  }

  async save() {
    const body = read(this.form);
    try {
      let saved;
      if (this.aed) {
        const changes = changed(body, this.original);
        saved = await this.api.patch(`/v1/aeds/${encodeURIComponent(this.aed.id)}`, changes);
      } else {
        const fields = Object.entries(body).filter(([, v]) => v !== null && v !== "");
        saved = await this.api.post("/v1/aeds", Object.fromEntries(fields));
      }
      this.showErrors(null);
      this.dialog.close();
      this.onSaved(saved);
    } catch (err) {
      this.showErrors(err);
    }
  }

  async retire() {
    if (!confirm(t("aeds.retire_confirm"))) return;
    try {
      await this.api.del(`/v1/aeds/${encodeURIComponent(this.aed.id)}`);
      this.dialog.close();
      this.onSaved({ ...this.aed, status: "retired" });
    } catch (err) {
      this.showErrors(err);
    }
  }
}

const round6 = (v) => Math.round(v * 1e6) / 1e6;
