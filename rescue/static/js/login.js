// The login box: a token typed in, checked against the API, kept in sessionStorage only.
import { clearToken, getToken, setToken } from "./api.js";
import { $ } from "./dom.js";
import { t } from "./i18n.js";

/**
 * role: "admin" | "dispatch" | "volunteer"; probe(token) calls the API and throws ApiError;
 * onLogin() starts the page. The page has #login (form with input[name=token] and .error),
 * #app (hidden until logged in) and #logout.
 */
export async function setupLogin({ role, probe, onLogin }) {
  const form = $("#login");
  const app = $("#app");
  const error = $(".error", form);
  const show = (loggedIn) => {
    form.hidden = loggedIn;
    app.hidden = !loggedIn;
    $("#logout").hidden = !loggedIn;
  };
  const attempt = async (token) => {
    try {
      await probe(token);
    } catch (err) {
      clearToken(role);
      error.textContent = err.status === 401 ? t("login.unknown")
        : err.status === 403 ? t("login.wrong_role") : err.message;
      show(false);
      return false;
    }
    setToken(role, token);
    error.textContent = "";
    show(true);
    await onLogin();
    return true;
  };
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const input = form.elements.token;
    const token = input.value.trim();
    input.value = "";
    if (token) await attempt(token);
  });
  $("#logout").addEventListener("click", () => {
    clearToken(role);
    location.reload();
  });
  const stored = getToken(role);
  if (stored) await attempt(stored);
  else show(false);
}
