// Upload an import file and read its report (created, updated, rejected rows with reasons).
import { $, fill, h } from "./dom.js";
import { t } from "./i18n.js";

const TYPES = { csv: "text/csv", geojson: "application/geo+json", json: "application/json" };

/** The media type of a file, from its extension (browsers' guesses vary). */
export function mediaType(file) {
  const ext = file.name.split(".").pop().toLowerCase();
  return TYPES[ext] || file.type || "application/octet-stream";
}

export function setupImport(form, report, api, onDone) {
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const file = form.elements.file.files[0];
    if (!file) return;
    fill(report, h("p", {}, t("import.uploading")));
    try {
      const result = await api.upload("/v1/aeds/import", await file.arrayBuffer(), mediaType(file));
      show(report, result);
      onDone();
    } catch (err) {
      fill(report, h("p", { class: "error" }, err.message),
        h("ul", {}, err.details.map((d) => h("li", {}, `${d.field}: ${d.problem}`))));
    }
  });
}

function show(report, result) {
  fill(report,
    h("p", { class: "summary" },
      h("span", { class: "created" }, t("import.created", { n: result.created })), " · ",
      h("span", { class: "updated" }, t("import.updated", { n: result.updated })), " · ",
      h("span", { class: "rejected" }, t("import.rejected", { n: result.rejected.length }))),
    result.rejected.length
      ? h("table", { class: "grid" },
          h("thead", {}, h("tr", {}, h("th", {}, t("import.ref")), h("th", {}, t("import.error")))),
          h("tbody", {}, result.rejected.map((r) => h("tr", {}, h("td", {}, r.ref), h("td", {}, r.error)))))
      : null);
  $(".summary", report).scrollIntoView({ block: "nearest" });
}
