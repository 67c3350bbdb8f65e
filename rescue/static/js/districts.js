// District names for selects and tables (adcode or Chinese name -> the name in the language).
import { h } from "./dom.js";
import { nameOf } from "./i18n.js";

let index = null;

/** Load the district list once (the same file the map draws). */
export async function loadDistrictNames() {
  if (index) return index;
  const fc = await fetch("/ui/districts.geojson").then((r) => r.json());
  index = fc.features.map((f) => f.properties);
  return index;
}

/** A district's name in the current language from its adcode or Chinese name. */
export function districtName(code) {
  const d = index?.find((p) => p.adcode === code || p.name === code);
  return d ? nameOf(d) : code || "–";
}

/** <option>s: "all" first, then every district by adcode. */
export function districtOptions(allLabel) {
  return [h("option", { value: "" }, allLabel),
    ...index.map((d) => h("option", { value: d.adcode }, nameOf(d)))];
}
