// The dispatcher's console: raise an alert, see the plan drawn, watch the responders live
// (the incident is polled every second), join the guidance session.
import { all, call, client, settings } from "./api.js";
import { $, duration, fill, h, metres, setZone } from "./dom.js";
import { districtName, loadDistrictNames } from "./districts.js";
import { GuidancePanel } from "./guidance.js";
import { setupLangToggle, t } from "./i18n.js";
import { entryLabel, timeline } from "./incident-view.js";
import { setupLogin } from "./login.js";
import { MapView } from "./map.js";
import { drawPlan, responderRows, toast } from "./plan.js";

const api = client("dispatch");
const STORE = "rescue.dispatch.incident";
setupLangToggle($("#lang"));
const config = await settings();
setZone(config.timezone);
await loadDistrictNames();

let map = null;
let current = null; // the latest incident (or plan) shown
let poller = null;
let seen = 0; // timeline entries already announced
const guidance = new GuidancePanel($("#guidance"), { canStep: true, markers: ["ems_arrived"] });

function placePatient(lat, lng) {
  if (!$("#alert-form").hidden) {
    const f = $("#alert-form").elements;
    f.lat.value = lat.toFixed(6);
    f.lng.value = lng.toFixed(6);
    f.crs.value = "wgs84";
    map.clear("marks");
    map.pin("marks", lat, lng, { px: 7, cls: "patient tentative" });
  }
}

const number = (raw) => (raw.trim() !== "" && Number.isFinite(Number(raw)) ? Number(raw) : raw.trim() || null);

async function raise(e) {
  e.preventDefault();
  const form = e.target;
  const f = form.elements;
  const body = {
    external_id: `UI-${Date.now()}-${Math.random().toString(36).slice(2, 6)}`,
    location: { lat: number(f.lat.value), lng: number(f.lng.value), crs: f.crs.value },
    category: f.category.value,
    exercise: f.exercise.checked,
  };
  if (f.address.value.trim()) body.address = f.address.value.trim();
  for (const el of form.querySelectorAll(".invalid")) el.classList.remove("invalid");
  for (const el of form.querySelectorAll(".problem")) el.textContent = "";
  $(".error", form).textContent = "";
  try {
    const plan = await api.post("/v1/alerts", body);
    show(plan.incident_id, plan);
  } catch (err) {
    $(".error", form).textContent = err.message;
    for (const d of err.details) {
      const el = form.querySelector(`[data-field="${d.field}"]`) || form.querySelector('[data-field="location.lat"]');
      el.classList.add("invalid");
      $(".problem", el).textContent = d.problem;
    }
  }
}

function show(id, plan = null) {
  sessionStorage.setItem(STORE, id);
  $("#alert-form").hidden = true;
  $("#incident").hidden = false;
  seen = 0;
  if (plan) render(plan, true);
  clearInterval(poller);
  poll(!plan);
  poller = setInterval(poll, 1000);
}

async function poll(first = false) {
  const id = sessionStorage.getItem(STORE);
  if (!id) return;
  try {
    const incident = await api.get(`/v1/incidents/${encodeURIComponent(id)}`);
    render(incident, first);
    if (incident.status !== "open") clearInterval(poller);
  } catch (err) {
    if (err.status === 404) reset();
  }
}

function render(inc, focus = false) {
  current = inc;
  const offers = inc.offers || inc.responders.map((r) => ({ ...r, id: r.offer_id, state: "open" }));
  drawPlan(map, inc, offers, config, { focus });
  fill($("#incident-head"),
    h("h2", {}, `${t("incident.title")} ${inc.external_id} `,
      h("span", { class: `badge incident-${inc.status}`, id: "incident-status" }, t(`istatus.${inc.status}`))),
    h("p", { class: "mono" }, inc.incident_id),
    h("p", { class: "where" }, `${districtName(inc.district)} · ${inc.address || ""} · `,
      h("span", { class: "mono" }, `${inc.location.lat.toFixed(5)}, ${inc.location.lng.toFixed(5)} (WGS-84)`)),
    inc.degraded?.length ? h("p", { class: "error" }, `${t("plan.degraded")}: ${inc.degraded.join(", ")}`) : null);
  fill($("#responders"), responderRows(offers, inc.aeds));
  if (!offers.length) fill($("#responders"), h("li", { class: "hint" }, t("plan.no_responders")));
  fill($("#plan-aeds"), inc.aeds.map((a, i) => h("li", { "data-aed": a.id },
    h("b", {}, `${i + 1}. ${a.name}`), ` · ${metres(a.distance_m)} · ${duration(a.eta_s)}`,
    a.access_note ? h("small", {}, a.access_note) : null)));
  if (!inc.aeds.length) fill($("#plan-aeds"), h("li", { class: "hint" }, t("plan.no_aeds")));
  const entries = inc.timeline || [];
  fill($("#timeline"), timeline([...entries].reverse()));
  for (const e of entries.slice(seen)) {
    if (seen && (["offer_accepted", "offer_declined"].includes(e.type) || e.data?.status || e.data?.marker)) {
      toast($("#toasts"), `${entryLabel(e.type)} · ${e.data?.volunteer_id || e.actor || ""}`);
    }
  }
  seen = entries.length;
  const open = inc.status === "open";
  $("#close-incident").hidden = $("#cancel-incident").hidden = !open;
  $("#new-alert").hidden = open;
}

function reset() {
  clearInterval(poller);
  guidance.leave();
  fill($("#guidance"));
  sessionStorage.removeItem(STORE);
  current = null;
  for (const layer of ["plan", "lines", "areas", "marks"]) map.clear(layer);
  $("#incident").hidden = true;
  $("#alert-form").hidden = false;
  $("#alert-form").reset();
}

async function end(kind) {
  const body = kind === "cancel" ? { reason: prompt(t("incident.cancel_reason")) || "cancelled from the console" }
    : { outcome: {} };
  try {
    render(await api.post(`/v1/incidents/${encodeURIComponent(current.incident_id)}/${kind}`, body));
  } catch (err) {
    toast($("#toasts"), err.message);
  }
}

async function start() {
  map = new MapView($("#map"), { onClick: placePatient });
  await map.ready;
  all(api, "/v1/aeds", { status: "active" }).then((aeds) => {
    for (const a of aeds) map.pin("aeds", a.location.lat, a.location.lng, { px: 2.5, cls: "aed faint", title: a.name });
  }).catch(() => {});
  $("#alert-form").addEventListener("submit", raise);
  $("#join-guidance").addEventListener("click", () => {
    const g = current?.guidance;
    if (g) guidance.join(g.session_id, g.token);
  });
  $("#close-incident").addEventListener("click", () => end("close"));
  $("#cancel-incident").addEventListener("click", () => end("cancel"));
  $("#new-alert").addEventListener("click", reset);
  document.addEventListener("langchange", () => current && render(current));
  const stored = sessionStorage.getItem(STORE);
  if (stored) show(stored);
}

setupLogin({
  role: "dispatch",
  probe: async (token) => {
    // The alert endpoint is the dispatcher's own: an empty body is a 400 for a dispatch key,
    // 401/403 for anything else (nothing is created).
    try {
      await call(token, "POST", "/v1/alerts", { json: {} });
    } catch (err) {
      if (err.status === 400 || err.status === 422) return;
      throw err;
    }
  },
  onLogin: start,
});

window.rescueMap = () => map; // lets the browser tests click a known point on the map
