// The API from the browser: the token kept in sessionStorage, JSON in and out, WebSocket URLs.

const KEY = (role) => `rescue.token.${role}`;

export function getToken(role) {
  return sessionStorage.getItem(KEY(role));
}

export function setToken(role, token) {
  sessionStorage.setItem(KEY(role), token);
}

export function clearToken(role) {
  sessionStorage.removeItem(KEY(role));
}

/** An API error: status, code, message and details [{field, problem}]. */
export class ApiError extends Error {
  constructor(status, error) {
    super(error?.message || `HTTP ${status}`);
    this.status = status;
    this.code = error?.code || "http_error";
    this.details = error?.details || [];
  }
}

function query(params) {
  const pairs = Object.entries(params || {}).filter(([, v]) => v !== "" && v != null);
  return pairs.length ? "?" + new URLSearchParams(pairs).toString() : "";
}

/** Call the API: {json} sends JSON, {body, type} sends raw bytes; 204 gives null. */
export async function call(token, method, path, { params, json, body, type } = {}) {
  const headers = { Accept: "application/json" };
  if (token) headers.Authorization = `Bearer ${token}`;
  if (json !== undefined) {
    headers["Content-Type"] = "application/json";
    body = JSON.stringify(json);
  } else if (body !== undefined) {
    headers["Content-Type"] = type;
  }
  let resp;
  try {
    resp = await fetch(path + query(params), { method, headers, body });
  } catch (err) {
    throw new ApiError(0, { code: "network", message: String(err.message || err) });
  }
  if (resp.status === 204) return null;
  const data = await resp.json().catch(() => null);
  if (!resp.ok) throw new ApiError(resp.status, data?.error);
  return data;
}

/** A client bound to one role's stored token. */
export function client(role) {
  const t = () => getToken(role);
  return {
    get: (path, params) => call(t(), "GET", path, { params }),
    post: (path, json, params) => call(t(), "POST", path, { json, params }),
    put: (path, json) => call(t(), "PUT", path, { json }),
    patch: (path, json) => call(t(), "PATCH", path, { json }),
    del: (path) => call(t(), "DELETE", path),
    upload: (path, body, type) => call(t(), "POST", path, { body, type }),
    ws: (path, token = t()) => wsUrl(path, token),
  };
}

/** Every page of a list endpoint (up to `max` items). */
export async function all(api, path, params = {}, max = 5000) {
  const items = [];
  let cursor = null;
  do {
    const page = await api.get(path, { ...params, limit: 1000, cursor });
    items.push(...page.items);
    cursor = page.next_cursor;
  } while (cursor && items.length < max);
  return items;
}

/** A WebSocket URL on this host; browsers cannot set headers there, so the token rides along. */
export function wsUrl(path, token) {
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  return `${scheme}://${location.host}${path}?token=${encodeURIComponent(token)}`;
}

/** The consoles' settings (zone, default system, budget, speeds), fetched once. */
let config = null;
export async function settings() {
  config ??= await fetch("/ui/config.json").then((r) => r.json());
  return config;
}
