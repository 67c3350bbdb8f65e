// Register a volunteer, edit one (status, certificate renewal, travel, quiet hours) and issue
// a new token, in a dialog. A token is shown once, as the API gives it: the administrator hands
// it to the volunteer's phone; the API keeps only its hash.
import { districtOptions } from "./districts.js";
import { fill, h } from "./dom.js";
import { DialogForm, changed, field, input, select, showProblems } from "./forms.js";
import { applyI18n, t } from "./i18n.js";

const MODES = ["walk", "bike", "car"];
const STATUSES = ["active", "suspended"];
const CERTIFICATE = ["number", "issuer", "issued_on", "expires_on"];

function controls() {
  return [
    field("name", input("name", { required: true }), "vol.name"),
    field("phone", input("phone", { type: "tel", required: true }), "vol.phone"),
    field("travel_mode", select("travel_mode", MODES, "mode"), "vol.travel_mode"),
    field("status", select("status", STATUSES, "vstatus"), "vol.status"),
    field("home_district", h("select", { name: "home_district" }, districtOptions("–")),
      "vol.home_district"),
    field("quiet_hours", input("quiet_hours", { placeholder: "23:00-07:00" }), "vol.quiet_hours"),
    h("fieldset", { class: "field location", "data-field": "certificate" },
      h("legend", { "data-i18n": "vol.certificate_legend" }),
      field("certificate.number", input("number"), "vol.certificate"),
      field("certificate.issuer", input("issuer"), "vol.issuer"),
      field("certificate.issued_on", input("issued_on", { type: "date" }), "vol.issued_on"),
      field("certificate.expires_on", input("expires_on", { type: "date" }), "vol.expires_on"),
      h("small", { class: "problem" })),
  ];
}

/** The form's values as an API body (null for an empty optional field). */
function read(form) {
  const v = (name) => form.elements[name].value.trim();
  return {
    name: v("name"),
    phone: v("phone"),
    travel_mode: v("travel_mode"),
    status: v("status"),
    home_district: v("home_district") || null,
    quiet_hours: v("quiet_hours") || null,
    certificate: Object.fromEntries(CERTIFICATE.map((k) => [k, v(k)])),
  };
}

function write(form, vol) {
  const set = (name, value) => (form.elements[name].value = value ?? "");
  for (const key of ["name", "phone", "travel_mode", "status", "home_district", "quiet_hours"]) {
    set(key, vol[key]);
  }
  for (const key of CERTIFICATE) set(key, vol.certificate?.[key]);
}

export class VolunteerForm extends DialogForm {

  /** Open for a new volunteer (vol null) or to edit one. */
  open(vol) {
    this.vol = vol;
    const buttons = h("div", { class: "buttons" },
      h("button", { class: "primary", "data-i18n": "form.save" }),
      vol ? h("button", { type: "button", id: "vol-token", "data-i18n": "vols.new_token",
        onclick: () => this.newToken() }) : null,
      h("button", { type: "button", "data-i18n": "form.cancel", onclick: () => this.dialog.close() }));
    fill(this.form, h("h2", { "data-i18n": vol ? "vols.edit" : "vols.new" }),
      h("p", { class: "error", role: "alert" }),
      h("div", { class: "form-grid" }, controls()), buttons);
    applyI18n(this.form);
    write(this.form, vol || { travel_mode: "walk", status: "active" });
    this.original = read(this.form);
    this.dialog.showModal();
  }

  async save() {
    const body = read(this.form);
    try {
      if (this.vol) {
        const saved = await this.api.patch(`/v1/volunteers/${encodeURIComponent(this.vol.id)}`,
          changed(body, this.original));
        this.dialog.close();
        this.onSaved(saved);
        return;
      }
      const fields = Object.entries(body).filter(([, v]) => v !== null && v !== "");
      const { token, ...saved } = await this.api.post("/v1/volunteers", Object.fromEntries(fields));
      this.onSaved(saved);
      this.showToken(saved, token);
    } catch (err) {
      showProblems(this.form, err);
    }
  }

  async newToken() {
    if (!confirm(t("vols.new_token_confirm"))) return;
    try {
      const { token } = await this.api.post(`/v1/volunteers/${encodeURIComponent(this.vol.id)}/token`);
      this.showToken(this.vol, token);
    } catch (err) {
      showProblems(this.form, err);
    }
  }

  /** The token, once: to be handed to the volunteer's phone now. */
  showToken(vol, token) {
    fill(this.form, h("h2", {}, vol.name),
      h("p", { "data-i18n": "vols.token_once" }),
      h("p", {}, h("code", { id: "vol-token-value", class: "mono token" }, token)),
      h("div", { class: "buttons" },
        h("button", { type: "button", class: "primary", "data-i18n": "form.close",
          onclick: () => this.dialog.close() })));
    applyI18n(this.form);
  }
}
