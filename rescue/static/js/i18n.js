// Chinese and English: t(key), a toggle stored in localStorage, [data-i18n] attributes applied.
import { STRINGS } from "./strings.js";

const STORE = "rescue.lang";
let lang = localStorage.getItem(STORE) || (navigator.language.startsWith("zh") ? "zh" : "en");

export const currentLang = () => lang;

/** The string for key in the current language; {name} placeholders filled from vars. */
export function t(key, vars = {}) {
  const entry = STRINGS[key];
  const text = entry ? entry[lang === "zh" ? 0 : 1] : key;
  return text.replace(/\{(\w+)\}/g, (_, name) => (name in vars ? vars[name] : `{${name}}`));
}

/** A district's (or any {name, name_en}) name in the current language. */
export const nameOf = (o) => (lang === "en" && o.name_en ? o.name_en : o.name);

/** Translate [data-i18n] text, [data-i18n-placeholder] and [data-i18n-title] under root. */
export function applyI18n(root = document) {
  document.documentElement.lang = lang === "zh" ? "zh-CN" : "en";
  for (const el of root.querySelectorAll("[data-i18n]")) el.textContent = t(el.dataset.i18n);
  for (const el of root.querySelectorAll("[data-i18n-placeholder]")) {
    el.placeholder = t(el.dataset.i18nPlaceholder);
  }
  for (const el of root.querySelectorAll("[data-i18n-title]")) el.title = t(el.dataset.i18nTitle);
}

export function setLang(next) {
  lang = next;
  localStorage.setItem(STORE, lang);
  applyI18n();
  document.dispatchEvent(new CustomEvent("langchange", { detail: lang }));
}

/** Wire the header's language button (it shows the other language's name). */
export function setupLangToggle(button) {
  const label = () => (button.textContent = lang === "zh" ? "English" : "中文");
  button.addEventListener("click", () => {
    setLang(lang === "zh" ? "en" : "zh");
    label();
  });
  label();
  applyI18n();
}
