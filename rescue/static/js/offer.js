// An offer on the phone: what is asked, how far, until when; accept or decline.
import { duration, fill, h, metres } from "./dom.js";
import { t } from "./i18n.js";

export function renderOffer(root, offer, { accept, decline }) {
  clearInterval(root._countdown);
  const left = h("b", { class: "countdown" });
  const tick = () => {
    const s = Math.round((new Date(offer.expires_at) - Date.now()) / 1000);
    left.textContent = s > 0 ? duration(s) : t("offer.expired");
  };
  tick();
  root._countdown = setInterval(tick, 1000);
  const aed = offer.aed;
  fill(root,
    h("h2", {}, t(`offer.title_${offer.role}`)),
    offer.exercise ? h("p", { class: "badge exercise" }, t("incident.exercise")) : null,
    h("dl", { class: "facts" },
      h("dt", {}, t("offer.distance")), h("dd", { class: "distance" }, metres(offer.distance_m)),
      h("dt", {}, t("offer.eta")), h("dd", { class: "eta" }, duration(offer.eta_s)),
      h("dt", {}, t("offer.expires_in")), h("dd", {}, left),
      aed ? [h("dt", {}, t("offer.aed")), h("dd", {}, aed.name, aed.address ? h("small", {}, aed.address) : null)] : null),
    h("p", { class: "hint" }, t("offer.location_after_accept")),
    h("div", { class: "buttons big" },
      h("button", { type: "button", class: "primary accept", onclick: accept }, t("offer.accept")),
      h("button", { type: "button", class: "decline", onclick: decline }, t("offer.decline"))));
  root.hidden = false;
  root.scrollIntoView({ block: "start" });
}
