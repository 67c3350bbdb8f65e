// Drawing an alert's plan: the patient, the 5-minute reach, the AEDs (numbered), and for each
// responder sent to fetch one, the way AED -> patient once they accepted.
import { duration, h, metres } from "./dom.js";
import { t } from "./i18n.js";

/** The straight-line distance a walker covers in the budget (the travel model's inverse). */
export function reachM(config, budgetS, mode = "walk") {
  return (budgetS * config.speed_mps[mode]) / config.detour_factor;
}

export function drawPlan(map, inc, offers, config, { focus = false } = {}) {
  for (const layer of ["plan", "lines", "areas", "marks"]) map.clear(layer);
  const p = inc.location;
  const reach = reachM(config, inc.time_budget_s);
  map.circle("areas", p.lat, p.lng, reach, { cls: "reach" });
  const fetching = new Set(offers.filter((o) => o.role === "aed" && o.state === "accepted").map((o) => o.aed_id));
  inc.aeds.forEach((a, i) => {
    const going = fetching.has(a.id);
    if (going) map.line("lines", [[a.location.lat, a.location.lng], [p.lat, p.lng]], { cls: "fetch-route" });
    map.pin("plan", a.location.lat, a.location.lng, {
      px: 7, cls: `plan-aed${going ? " fetching" : ""}`, id: a.id,
      title: `${i + 1}. ${a.name} · ${metres(a.distance_m)}`,
    });
    map.label("plan", a.location.lat, a.location.lng, String(i + 1), { px: 9, cls: "pin-label", dy: 0.35 });
  });
  map.pin("plan", p.lat, p.lng, { px: 8, cls: "patient", title: t("plan.patient") });
  map.label("plan", p.lat, p.lng, "✚", { px: 10, cls: "pin-label", dy: 0.35 });
  if (focus) map.focus(p.lat, p.lng, reach * 1.5);
}

/** The responders, soonest first: role, ETA, distance, the AED to fetch, state, last marker. */
export function responderRows(offers, aeds) {
  const index = new Map(aeds.map((a, i) => [a.id, i + 1]));
  return [...offers].sort((a, b) => a.eta_s - b.eta_s).map((o) => h("li", {
    "data-offer": o.id, "data-state": o.state, "data-volunteer": o.volunteer_id,
    class: `responder role-${o.role} state-${o.state}`,
  },
  h("span", { class: `role badge role-${o.role}` }, t(`role.${o.role}`)),
  h("span", { class: "eta" }, duration(o.eta_s)),
  h("span", { class: "dist" }, metres(o.distance_m)),
  o.aed_id ? h("span", { class: "via" }, `→ AED ${index.get(o.aed_id) ?? ""}`) : null,
  h("span", { class: `badge offer-${o.state}` }, t(`ostate.${o.state}`)),
  o.last_status ? h("span", { class: "badge marker last-status" }, t(`marker.${o.last_status}`)) : null,
  h("small", { class: "mono" }, o.volunteer_id)));
}

export function toast(root, text) {
  const el = h("div", { class: "toast" }, text);
  root.append(el);
  setTimeout(() => el.remove(), 6000);
}
