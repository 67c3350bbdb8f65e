// Is an AED available now? Opening hours in the common OpenStreetMap subset, in the zone of the
// deployment: "24/7", "Mo-Fr 08:00-18:00; Sa 09:00-12:00", "Mo,We 08:00-12:00,14:00-18:00",
// "Su off". Anything else is "unknown" (null): the map says so rather than guess.

const DAYS = ["Mo", "Tu", "We", "Th", "Fr", "Sa", "Su"];
const RULE = /^(?:([A-Za-z,\- ]+?)\s+)?(off|closed|\d\d:\d\d-\d\d:\d\d(?:\s*,\s*\d\d:\d\d-\d\d:\d\d)*)$/;

/** The weekday (0 = Monday), minutes since midnight and ISO date, now, in a zone. */
export function localNow(timeZone, at = new Date()) {
  const parts = Object.fromEntries(
    new Intl.DateTimeFormat("en-GB", {
      timeZone, weekday: "short", hour: "2-digit", minute: "2-digit", hourCycle: "h23",
      year: "numeric", month: "2-digit", day: "2-digit",
    }).formatToParts(at).map((p) => [p.type, p.value]),
  );
  return {
    day: DAYS.indexOf(parts.weekday.slice(0, 2)),
    minutes: Number(parts.hour) * 60 + Number(parts.minute),
    date: `${parts.year}-${parts.month}-${parts.day}`,
  };
}

function days(selector) {
  if (!selector) return new Set(DAYS.keys());
  const out = new Set();
  for (const part of selector.split(",").map((p) => p.trim())) {
    const [a, b] = part.split("-").map((d) => DAYS.indexOf(d.trim()));
    if (a < 0 || (b !== undefined && b < 0)) return null;
    for (let d = a; ; d = (d + 1) % 7) {
      out.add(d);
      if (b === undefined || d === b) break;
    }
  }
  return out;
}

const minutes = (hhmm) => Number(hhmm.slice(0, 2)) * 60 + Number(hhmm.slice(3, 5));

/** true / false, or null when the expression is outside the subset understood here. */
export function isOpen(expr, now) {
  let open = false;
  for (const raw of (expr || "24/7").split(";").map((r) => r.trim()).filter(Boolean)) {
    if (raw === "24/7") {
      open = true;
      continue;
    }
    const m = RULE.exec(raw);
    if (!m) return null;
    const selected = days(m[1]);
    if (selected === null) return null;
    const off = m[2] === "off" || m[2] === "closed";
    const spans = off ? [] : m[2].split(",").map((span) => span.trim().split("-").map(minutes));
    if (selected.has(now.day)) {
      // A span past midnight ("22:00-02:00") opens late today and ends tomorrow.
      open = spans.some(([from, to]) => now.minutes >= from && (to <= from || now.minutes < to));
    }
    if (selected.has((now.day + 6) % 7) && spans.some(([from, to]) => to <= from && now.minutes < to)) {
      open = true;
    }
  }
  return open;
}

/** "available" | "closed" | "unknown" | "expired", or the status of an AED out of service. */
export function availability(aed, now) {
  if (aed.status !== "active") return aed.status;
  for (const key of ["pads_expire_on", "battery_expire_on"]) {
    if (aed[key] && aed[key] < now.date) return "expired";
  }
  const open = isOpen(aed.opening_hours, now);
  return open === null ? "unknown" : open ? "available" : "closed";
}
