// The remote-guidance session: a WebSocket shared by the dispatcher and the accepted
// responders (API.md "Remote guidance"), and a panel showing the current step (its text for my
// role), the step buttons (dispatcher), markers and chat. The step says when the metronome
// runs and at which cadence; onMetronome({on, perMinute}) tells the page.
import { wsUrl } from "./api.js";
import { clock, fill, h } from "./dom.js";
import { currentLang, t } from "./i18n.js";

const stepId = (step) => (step && typeof step === "object" ? step.id : step) ?? null;
const pick = (o, key) => o?.[`${key}_${currentLang()}`] ?? o?.[`${key}_en`] ?? o?.[key] ?? null;

export class GuidanceSocket {
  constructor({ sessionId, token, onMessage, onStatus }) {
    Object.assign(this, { sessionId, token, onMessage, onStatus });
    this.ws = null;
    this.stopped = false;
    this.failures = 0;
  }

  connect() {
    this.onStatus("connecting");
    const ws = new WebSocket(wsUrl(`/v1/guidance/${encodeURIComponent(this.sessionId)}/ws`, this.token));
    this.ws = ws;
    let opened = false;
    ws.onopen = () => {
      opened = true;
      this.failures = 0;
      this.onStatus("connected");
    };
    ws.onmessage = (e) => {
      let msg;
      try {
        msg = JSON.parse(e.data);
      } catch {
        return;
      }
      if (msg.type === "closed") this.stopped = true;
      this.onMessage(msg);
    };
    ws.onclose = () => {
      if (this.stopped) return this.onStatus("closed");
      this.failures = opened ? 0 : this.failures + 1;
      // Refused three times running (a wrong token, no such session): stop trying.
      if (this.failures >= 3) return this.onStatus("unavailable");
      this.onStatus("reconnecting");
      setTimeout(() => this.stopped || this.connect(), 300 * 2 ** this.failures);
    };
  }

  send(message) {
    if (this.ws?.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify(message));
  }

  close() {
    this.stopped = true;
    this.ws?.close();
  }
}

export class GuidancePanel {
  /** canStep: the dispatcher's step buttons; markers: marker buttons sent on the socket. */
  constructor(root, { canStep = false, markers = [], onMetronome = null } = {}) {
    Object.assign(this, { root, canStep, markers, onMetronome });
    this.state = null;
    this.step = null;
    this.log = [];
    this.participants = [];
    this.socket = null;
    this.status = "idle";
    this.metronome = null;
    document.addEventListener("langchange", () => this.render());
  }

  join(sessionId, token) {
    this.leave();
    this.socket = new GuidanceSocket({
      sessionId, token,
      onMessage: (m) => this.handle(m),
      onStatus: (status) => {
        this.status = status;
        this.render();
      },
    });
    this.socket.connect();
  }

  leave() {
    this.socket?.close();
    this.socket = null;
  }

  handle(msg) {
    if (msg.type === "state") {
      // A reconnect: the state's timeline holds every recorded message, live ones follow.
      this.state = msg;
      this.step = msg.step;
      this.log = [...(msg.timeline || [])];
      this.participants = [...(msg.participants || [])];
    } else if (msg.type === "participant" && ["online", "offline"].includes(msg.event)) {
      // Presence: who has the session open now (not a timeline entry).
      const p = this.participants.find((q) => q.id === msg.participant?.id);
      if (p) p.online = msg.event === "online";
    } else if (msg.type !== "signal") {
      if (msg.type === "participant" && msg.participant
        && !this.participants.some((q) => q.id === msg.participant.id)) {
        this.participants.push({ ...msg.participant, online: false });
      }
      if (msg.id && this.log.some((m) => m.id === msg.id)) return;
      if (msg.type === "step") this.step = msg.step;
      if (msg.type === "closed") this.ended = true;
      this.log.push(msg);
    }
    this.tellMetronome();
    this.render();
  }

  /** The current step's metronome (on, and at which cadence), told when it changes. */
  tellMetronome() {
    const step = this.currentStep();
    const perMinute = step?.cadence_per_min || this.state?.protocol?.metronome?.cadence_per_min || null;
    const next = { on: this.ended ? false : step?.metronome ?? null, perMinute };
    if (JSON.stringify(next) === JSON.stringify(this.metronome)) return;
    this.metronome = next;
    this.onMetronome?.(next);
  }

  myRole() {
    const me = this.state?.me;
    return me?.role === "dispatcher" ? "dispatcher" : me?.responder_role || "cpr";
  }

  currentStep() {
    const steps = this.state?.protocol?.steps || [];
    return steps.find((s) => s.id === stepId(this.step)) || null;
  }

  render() {
    const steps = this.state?.protocol?.steps || [];
    const step = this.currentStep();
    const status = h("p", { class: `status ${this.status}` }, t(`guidance.${this.status}`));
    const current = this.state ? h("div", { class: "step", "data-step": stepId(this.step) },
      h("b", {}, step ? `${step.n ?? ""}. ${pick(step, "title")}` : String(stepId(this.step))),
      step?.metronome ? h("span", { class: "badge marker" }, `♥ ${step.cadence_per_min}/min`) : null,
      h("p", {}, pick(step?.roles?.[this.myRole()], "text") || pick(step, "text") || "")) : null;
    const stepButtons = this.canStep && steps.length
      ? h("div", { class: "steps" }, steps.map((s) => h("button", {
          type: "button", "data-step": s.id, class: s.id === stepId(this.step) ? "current" : "",
          onclick: () => this.socket?.send({ type: "step", step: s.id }),
        }, pick(s, "title") || s.id)))
      : null;
    const markerButtons = this.markers.length
      ? h("div", { class: "markers" }, this.markers.map((m) => h("button", {
          type: "button", "data-marker": m,
          onclick: () => this.socket?.send({ type: "marker", marker: m }),
        }, t(`marker.${m}`))))
      : null;
    const chat = h("form", { class: "chat", onsubmit: (e) => {
      e.preventDefault();
      const text = e.target.elements.text.value.trim();
      if (text) this.socket?.send({ type: "chat", text });
      e.target.reset();
    } }, h("input", { name: "text", autocomplete: "off", maxlength: 2000,
      placeholder: t("guidance.chat_placeholder") }), h("button", {}, t("guidance.send")));
    const log = h("ol", { class: "log" }, this.log.slice(-40).reverse().map((m) => describe(m, steps)));
    const here = this.participants.length ? h("ul", { class: "participants" },
      this.participants.map((p) => h("li", {
        class: p.online ? "online" : "offline", "data-participant": p.id,
        title: t(p.online ? "guidance.online" : "guidance.offline"),
      }, p.role === "dispatcher" ? t("who.dispatcher")
        : `${t("who.responder")} · ${t(`role.${p.responder_role}`)}`))) : null;
    fill(this.root, status, here, current, stepButtons, markerButtons, this.socket ? chat : null, log);
  }
}

function describe(m, steps) {
  const role = m.from?.role;
  const who = role ? t(`who.${role}`) : "";
  const step = steps.find((s) => s.id === stepId(m.step));
  const what = m.type === "marker" ? t(`marker.${m.marker}`)
    : m.type === "chat" ? `“${m.text}”`
    : m.type === "step" ? `${t("guidance.step")} ${step ? pick(step, "title") : stepId(m.step)}`
    : m.type === "participant" ? t(`guidance.${m.event || "participant"}`, {
        role: t(`role.${m.participant?.responder_role}`) })
    : m.type === "closed" ? `${t(`istatus.${m.status}`)}${m.reason ? ` · ${m.reason}` : ""}`
    : m.type === "error" ? m.error?.message
    : m.type;
  return h("li", { class: m.type, "data-type": m.type }, h("time", {}, clock(m.at)), " ",
    h("b", {}, who), " ", what);
}
