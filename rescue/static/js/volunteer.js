// The volunteer's phone: duty and position, offers pushed live (with an alarm), accept or
// decline, then the way to the AED and the patient, the metronome and the status markers.
import { call, client, clearToken, getToken, settings, wsUrl } from "./api.js";
import { audio, alarm } from "./audio.js";
import { $, fill, h, setZone } from "./dom.js";
import { loadDistrictNames } from "./districts.js";
import { setupLangToggle, t } from "./i18n.js";
import { setupLogin } from "./login.js";
import { MapView } from "./map.js";
import { Mission } from "./mission.js";
import { renderOffer } from "./offer.js";
import { toast } from "./plan.js";

const api = client("volunteer");
setupLangToggle($("#lang"));
const config = await settings();
setZone(config.timezone);
await loadDistrictNames();

const state = { onDuty: false, position: null, offer: null, keepAlive: null, watch: null, sentAt: 0 };
let map = null;
let mission = null;

const say = (text) => toast($("#toasts"), text);
const showError = (err) => ($("#duty .error").textContent = err ? err.message : "");

function drawMe() {
  map.clear("marks");
  if (state.position) map.pin("marks", state.position.lat, state.position.lng, { px: 7, cls: "me", title: t("duty.me") });
}

function renderDuty() {
  $("#duty-state").textContent = t(state.onDuty ? "duty.on" : "duty.off");
  $("#duty-state").className = state.onDuty ? "on" : "off";
  $("#check-in").hidden = state.onDuty;
  $("#check-out").hidden = !state.onDuty;
  const p = state.position;
  $("#position").textContent = p ? `${p.lat.toFixed(5)}, ${p.lng.toFixed(5)} (${t(`source.${p.source}`)})` : t("duty.no_position");
}

async function sendPosition(force = false) {
  const p = state.position;
  if (!state.onDuty || !p || (!force && Date.now() - state.sentAt < 5000)) return;
  try {
    await api.put("/v1/me/location", { lat: p.lat, lng: p.lng, crs: "wgs84", accuracy_m: p.accuracy ?? undefined });
    state.sentAt = Date.now();
    showError(null);
  } catch (err) {
    if (err.code === "not_on_duty") setDuty(false);
    showError(err);
  }
}

function setPosition(lat, lng, source, accuracy = null) {
  state.position = { lat, lng, source, accuracy };
  drawMe();
  renderDuty();
  sendPosition(source === "map");
}

function setDuty(on) {
  state.onDuty = on;
  clearInterval(state.keepAlive);
  // Positions expire after position_ttl_s: refresh well before.
  if (on) state.keepAlive = setInterval(() => sendPosition(true), Math.min(60, config.position_ttl_s / 2) * 1000);
  renderDuty();
}

async function checkIn() {
  audio(); // a user gesture: unlock sound for the offer alarm
  const p = state.position;
  if (!p) return showError({ message: t("duty.need_position") });
  try {
    await api.put("/v1/me/duty", { on_duty: true, location: { lat: p.lat, lng: p.lng, crs: "wgs84" } });
    state.sentAt = Date.now();
    setDuty(true);
    showError(null);
  } catch (err) {
    showError(err);
  }
}

async function checkOut() {
  try {
    await api.put("/v1/me/duty", { on_duty: false });
    setDuty(false);
  } catch (err) {
    showError(err);
  }
}

function locate() {
  audio();
  if (!navigator.geolocation) return showError({ message: t("duty.no_geolocation") });
  if (state.watch !== null) navigator.geolocation.clearWatch(state.watch);
  state.watch = navigator.geolocation.watchPosition(
    (pos) => setPosition(pos.coords.latitude, pos.coords.longitude, "gps", pos.coords.accuracy),
    (err) => showError({ message: `${t("duty.geolocation_failed")}: ${err.message}` }),
    { enableHighAccuracy: true, maximumAge: 10000 },
  );
}

function showOffer(offer) {
  state.offer = offer;
  renderOffer($("#offer"), offer, {
    accept: async () => {
      try {
        const accepted = await api.post(`/v1/me/offers/${encodeURIComponent(offer.id)}/accept`);
        $("#offer").hidden = true;
        state.offer = null;
        startMission(accepted);
      } catch (err) {
        say(err.message);
        $("#offer").hidden = true;
      }
    },
    decline: async () => {
      $("#offer").hidden = true;
      state.offer = null;
      await api.post(`/v1/me/offers/${encodeURIComponent(offer.id)}/decline`).catch((err) => say(err.message));
    },
  });
}

function startMission(offer) {
  mission?.end();
  mission = new Mission({ root: $("#mission"), map, api, offer, position: state.position, say });
}

function onMessage(msg) {
  if (msg.type === "hello") {
    setDuty(Boolean(msg.on_duty));
    // On duty from before a reload: the position must be refreshed or it goes stale.
    if (msg.on_duty && !state.position) showError({ message: t("duty.need_position") });
  }
  else if (msg.type === "offer" && msg.offer.state === "open") {
    alarm();
    showOffer(msg.offer);
  } else if (msg.type === "offer_update") {
    const o = msg.offer;
    if (state.offer?.id === o.id && o.state !== "open") {
      $("#offer").hidden = true;
      state.offer = null;
      say(t(`ostate.${o.state}`));
    }
    if (mission?.offer.id === o.id) mission.update(o);
  } else if (msg.type === "incident_closed") {
    if (state.offer?.incident_id === msg.incident_id) $("#offer").hidden = true;
    if (mission?.offer.incident_id === msg.incident_id) mission.closed(msg);
  }
}

function connectStream(attempt = 0) {
  const badge = $("#stream-state");
  const ws = new WebSocket(wsUrl("/v1/me/stream", getToken("volunteer")));
  ws.onopen = () => {
    badge.textContent = t("stream.live");
    badge.className = "badge live";
    if (attempt > 0) loadOffers(); // what was offered while the socket was down
    attempt = 0;
  };
  ws.onmessage = (e) => onMessage(JSON.parse(e.data));
  ws.onclose = (e) => {
    badge.textContent = t("stream.offline");
    badge.className = "badge offline";
    if (e.code === 4001) {
      clearToken("volunteer");
      location.reload();
    } else if (getToken("volunteer")) {
      setTimeout(() => connectStream(attempt + 1), Math.min(10000, 500 * 2 ** attempt));
    }
  };
}

async function loadOffers() {
  const data = await api.get("/v1/me/offers");
  for (const o of data.items) {
    if (o.state === "accepted" && mission?.offer.id !== o.id) startMission(o);
    else if (o.state === "open" && !state.offer) showOffer(o);
  }
}

async function start() {
  map = new MapView($("#map"), { onClick: (lat, lng) => setPosition(lat, lng, "map") });
  await map.ready;
  $("#check-in").addEventListener("click", checkIn);
  $("#check-out").addEventListener("click", checkOut);
  $("#locate").addEventListener("click", locate);
  document.addEventListener("pointerdown", () => audio(), { once: true });
  document.addEventListener("langchange", () => {
    renderDuty();
    if (state.offer) showOffer(state.offer);
  });
  renderDuty();
  connectStream();
  await loadOffers();
}

setupLogin({
  role: "volunteer",
  probe: (token) => call(token, "GET", "/v1/me/offers", { params: { limit: 1 } }),
  onLogin: start,
});

window.rescueMap = () => map; // lets the browser tests click a known point on the map
