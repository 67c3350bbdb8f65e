// An incident as the API returns it: summary, offers with their states, the timeline, outcome.
import { clock, dateTime, duration, fill, h, metres } from "./dom.js";
import { districtName } from "./districts.js";
import { t } from "./i18n.js";

const has = (key) => t(key) !== key;

/** A timeline entry's data in a few words (markers, offers, reasons). */
function summary(entry) {
  const d = entry.data || {};
  const parts = [];
  if (d.role && has(`role.${d.role}`)) parts.push(t(`role.${d.role}`));
  else if (d.role && has(`who.${d.role}`)) parts.push(t(`who.${d.role}`));
  if (d.volunteer_id && d.volunteer_id !== entry.actor) parts.push(d.volunteer_id);
  if (d.status && has(`marker.${d.status}`) && d.status !== entry.type) parts.push(t(`marker.${d.status}`));
  if (d.marker && d.marker !== entry.type) parts.push(t(`marker.${d.marker}`));
  if (d.step) parts.push(d.step);
  if (Array.isArray(d.offers)) parts.push(t("incident.n_offers", { n: d.offers.length }));
  else if (typeof d.offers === "number") parts.push(t("incident.n_offers", { n: d.offers }));
  if (d.wave) parts.push(`${t("incident.wave")} ${d.wave}`);
  if (d.reason) parts.push(d.reason);
  if (d.text) parts.push(`“${d.text}”`);
  return parts.join(" · ");
}

export const entryLabel = (type) => (has(`event.${type}`) ? t(`event.${type}`)
  : has(`marker.${type}`) ? t(`marker.${type}`) : type);

export function timeline(entries) {
  return h("ol", { class: "timeline" }, entries.map((e) => h("li", { "data-type": e.type },
    h("time", {}, clock(e.at)), " ", h("b", {}, entryLabel(e.type)), " ",
    h("span", { class: "actor" }, e.actor || ""), " ", h("span", { class: "data" }, summary(e)))));
}

export function offersTable(offers) {
  return h("table", { class: "grid offers" },
    h("thead", {}, h("tr", {}, ["offer.volunteer", "offer.role", "offer.state", "offer.eta",
      "offer.distance", "offer.aed", "offer.last_status"].map((k) => h("th", {}, t(k))))),
    h("tbody", {}, offers.map((o) => h("tr", { "data-offer": o.id, "data-state": o.state },
      h("td", { class: "mono" }, o.volunteer_id), h("td", {}, t(`role.${o.role}`)),
      h("td", {}, h("span", { class: `badge offer-${o.state}` }, t(`ostate.${o.state}`))),
      h("td", {}, duration(o.eta_s)), h("td", {}, metres(o.distance_m)),
      h("td", { class: "mono" }, o.aed_id || "–"),
      h("td", { class: "last-status" }, o.last_status ? t(`marker.${o.last_status}`) : "–")))));
}

/** The whole incident into `root`. */
export function renderIncident(root, inc) {
  const loc = inc.location;
  const outcome = inc.outcome
    ? h("dl", { class: "outcome" }, Object.entries(inc.outcome).filter(([, v]) => v !== null)
        .map(([k, v]) => [h("dt", {}, t(`outcome.${k}`)), h("dd", {}, String(v))]))
    : null;
  fill(root,
    h("h2", {}, `${t("incident.title")} ${inc.external_id}`,
      h("span", { class: `badge incident-${inc.status}` }, t(`istatus.${inc.status}`)),
      inc.exercise ? h("span", { class: "badge exercise" }, t("incident.exercise")) : null),
    h("dl", { class: "facts" },
      h("dt", {}, t("incident.id")), h("dd", { class: "mono" }, inc.incident_id),
      h("dt", {}, t("incident.created")), h("dd", {}, dateTime(inc.created_at)),
      h("dt", {}, t("incident.where")),
      h("dd", {}, `${districtName(inc.district)} · ${inc.address || ""} (${loc.lat.toFixed(5)}, ${loc.lng.toFixed(5)})`),
      h("dt", {}, t("incident.budget")), h("dd", {}, duration(inc.budget_s ?? inc.time_budget_s)),
      inc.closed_at ? [h("dt", {}, t("incident.closed_at")), h("dd", {}, dateTime(inc.closed_at))] : null),
    outcome,
    h("h3", {}, t("incident.offers")), offersTable(inc.offers || []),
    h("h3", {}, t("incident.timeline")), timeline(inc.timeline || []));
}
