// What the consoles' dialogs share: labelled controls, and the API's problems shown next to
// the fields they name (the same words a client of the API gets).
import { $, $$, h } from "./dom.js";

/** A labelled control; `name` is the API's field name (problems land here). */
export function field(name, control, label) {
  return h("label", { class: "field", "data-field": name },
    h("span", { "data-i18n": label }), control, h("small", { class: "problem" }));
}

export const input = (name, attrs = {}) => h("input", { name, autocomplete: "off", ...attrs });

export const select = (name, values, prefix) => h("select", { name },
  values.map((v) => h("option", { value: v, "data-i18n": prefix ? `${prefix}.${v}` : null }, v)));

/** Show an API error in a form: its message on top, each detail beside its field (or the
 * field's parent: "location.lat" falls back to "location"); null clears them. */
export function showProblems(form, err) {
  for (const el of $$(".invalid", form)) el.classList.remove("invalid");
  for (const el of $$(".problem", form)) el.textContent = "";
  $(".error", form).textContent = err ? err.message : "";
  for (const d of err?.details || []) {
    const target = form.querySelector(`[data-field="${CSS.escape(d.field)}"]`)
      || form.querySelector(`[data-field="${CSS.escape(d.field.split(".")[0])}"]`);
    if (!target) continue;
    target.classList.add("invalid");
    $(":scope > .problem", target).textContent = d.problem;
  }
}

/** The entries of `body` that differ from `original` (a PATCH's body). */
export const changed = (body, original) => Object.fromEntries(Object.entries(body)
  .filter(([k, v]) => JSON.stringify(v) !== JSON.stringify(original[k])));

/** A form in a <dialog> that saves through the API: a subclass opens it and has save(). */
export class DialogForm {
  constructor(dialog, api, { onSaved }) {
    this.dialog = dialog;
    this.api = api;
    this.onSaved = onSaved;
    this.form = dialog.querySelector("form");
    this.form.addEventListener("submit", (e) => {
      e.preventDefault();
      this.save();
    });
  }
}
