// The administrator's console: map, inventory, import, maintenance, volunteers, incidents.
import { call, client, settings } from "./api.js";
import { $, $$, fill, h, setZone } from "./dom.js";
import { districtName, loadDistrictNames } from "./districts.js";
import { availability, localNow } from "./hours.js";
import { setupLangToggle, t } from "./i18n.js";
import { setupLogin } from "./login.js";
import { AedForm } from "./aed-form.js";
import { AedMap } from "./admin-map.js";
import { AedTable } from "./admin-aeds.js";
import { setupImport } from "./admin-import.js";
import { setupMaintenance, VolunteerTable } from "./admin-lists.js";
import { IncidentBrowser } from "./admin-incidents.js";
import { VolunteerForm } from "./volunteer-form.js";

const api = client("admin");
setupLangToggle($("#lang"));
const config = await settings();
setZone(config.timezone);
await loadDistrictNames();

function showTab(name, loaders) {
  for (const b of $$("#tabs button")) b.classList.toggle("active", b.dataset.tab === name);
  for (const p of $$("[data-panel]")) p.hidden = p.dataset.panel !== name;
  history.replaceState(null, "", `#${name}`);
  // Lists that change under the administrator's eyes reload each time; the others once.
  if (!loaders.loaded.has(name) || ["incidents", "maintenance"].includes(name)) {
    loaders.loaded.add(name);
    loaders[name]?.();
  }
}

function details(root, aed, onEdit) {
  if (!aed) return fill(root);
  const state = availability(aed, localNow(config.timezone));
  const row = (key, value) => [h("dt", {}, t(key)), h("dd", {}, value ?? "–")];
  fill(root, h("h3", {}, aed.name),
    h("dl", { class: "facts" },
      row("aed.status", h("span", { class: `badge status-${aed.status}` }, t(`status.${aed.status}`))),
      row("aed.now", h("span", { class: `badge now-${state}` }, t(`now.${state}`))),
      row("aed.district", districtName(aed.district)), row("aed.address", aed.address),
      row("aed.opening_hours", aed.opening_hours), row("aed.level", aed.level),
      row("aed.access_note", aed.access_note), row("aed.pads_expire_on", aed.pads_expire_on),
      row("aed.battery_expire_on", aed.battery_expire_on), row("aed.serial_no", aed.serial_no)),
    h("button", { type: "button", onclick: () => onEdit(aed) }, t("aeds.edit")));
}

async function start() {
  let map = null;
  let table = null;
  const pick = (aed) => form.open(aed);
  const form = new AedForm($("#aed-dialog"), api, {
    onSaved: (aed) => {
      map?.upsert(aed);
      table?.reload();
      details($("#aed-details"), aed.status === "retired" ? null : aed, pick);
    },
  });
  map = new AedMap($("#map"), api, config, {
    legend: $("#legend"),
    onAed: (aed) => details($("#aed-details"), aed, pick),
    onEmpty: (lat, lng) => form.open(null, { lat, lng }),
  });
  table = new AedTable({ form: $("#aed-filter"), table: $("#aed-table"), more: $("#aed-more"),
    api, config, onPick: pick });
  $("#aed-new").addEventListener("click", () => form.open(null));
  const volunteerForm = new VolunteerForm($("#vol-dialog"), api, { onSaved: () => volunteers.reload() });
  const volunteers = new VolunteerTable({ form: $("#vol-filter"), table: $("#vol-table"),
    more: $("#vol-more"), api, config, onPick: (v) => volunteerForm.open(v) });
  $("#vol-new").addEventListener("click", () => volunteerForm.open(null));
  const incidents = new IncidentBrowser({ form: $("#incident-lookup"), list: $("#incident-list"),
    view: $("#incident-view"), api });
  const maintenance = setupMaintenance($("#maint-form"), $("#maint-table"), api, pick);
  setupImport($("#import-form"), $("#import-report"), api, () => {
    map.load();
    table.reload();
  });
  const loaders = {
    loaded: new Set(),
    map: () => map.load(),
    aeds: () => table.reload(),
    maintenance,
    volunteers: () => volunteers.reload(),
    incidents: () => incidents.loadList(),
  };
  for (const b of $$("#tabs button")) b.addEventListener("click", () => showTab(b.dataset.tab, loaders));
  document.addEventListener("langchange", () => map.draw());
  const [tab, id] = location.hash.slice(1).split("/");
  showTab(loaders[tab] ? tab : "map", loaders);
  if (tab === "incidents" && id) incidents.open(decodeURIComponent(id));
}

setupLogin({
  role: "admin",
  probe: (token) => call(token, "GET", "/v1/volunteers", { params: { limit: 1 } }),
  onLogin: start,
});
