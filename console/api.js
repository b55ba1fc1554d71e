// Every call the console makes goes through here: the documented API only, relative to the
// page's <base> so it works under a reverse proxy's path prefix. Errors become ApiError with a
// sentence a person can read, never raw JSON.
import * as session from "./session.js";

export class ApiError extends Error {
  constructor(message, status, code) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

const WORDS = {
  0: "The server could not be reached. Is it running?",
  401: "You are not signed in, or your session has ended.",
  403: "You are not allowed to do that.",
  404: "Not found.",
  413: "That is too large for the server.",
  429: "Too many requests; wait a moment and try again.",
  500: "The server had an internal error.",
  502: "An upstream provider failed.",
  503: "The service is unavailable right now.",
};

function url(path) {
  return path.replace(/^\//, "");
}

/** Credentials for the signed-in session, or an explicit tenant API key. */
function authHeaders(auth) {
  if (auth === "none") return {};
  if (auth && auth.key) return { Authorization: "Bearer " + auth.key };
  const s = session.load();
  if (!s) return {};
  if (s.mode === "admin") return { "X-Admin-Secret": s.secret };
  return { Authorization: "Bearer " + s.access_token };
}

async function errorOf(response) {
  let message = WORDS[response.status] || `The server answered ${response.status}.`;
  let code;
  try {
    const body = await response.json();
    const error = body && body.error;
    if (typeof error === "string" && error) message = error;
    else if (error && typeof error.message === "string") message = error.message;
    code = body && (body.code || (error && (error.code || error.type)));
  } catch {
    // Not JSON: keep the words for the status.
  }
  return new ApiError(message, response.status, code);
}

let refreshing = null;

/** Trade the refresh token for a new access token (once, however many calls wait for it). */
async function refresh() {
  const s = session.load();
  if (!s || s.mode !== "user" || !s.refresh_token) return false;
  if (!refreshing) {
    refreshing = fetch(url("/api/auth/refresh"), {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ refresh_token: s.refresh_token }),
    })
      .then(async (r) => {
        if (!r.ok) return false;
        const tokens = await r.json();
        session.save({ ...s, ...tokens, expires_at: Date.now() + tokens.expires_in * 1000 });
        return true;
      })
      .catch(() => false)
      .finally(() => {
        refreshing = null;
      });
  }
  return refreshing;
}

/** Refresh a user's access token a minute before it expires, so calls never see the 401. */
export function scheduleRefresh(onExpired) {
  const tick = async () => {
    const s = session.load();
    if (!s || s.mode !== "user") return;
    if (s.expires_at - Date.now() < 60_000 && !(await refresh())) onExpired();
  };
  return setInterval(tick, 15_000);
}

/**
 * Call the API. `options`: method, body (JSON-encoded unless a FormData or string), auth
 * ({key} for a tenant key), signal, raw (return the Response, for streams and headers).
 */
export async function call(path, options = {}) {
  const headers = { ...authHeaders(options.auth), ...(options.headers || {}) };
  let body = options.body;
  if (body !== undefined && typeof body !== "string" && !(body instanceof FormData)) {
    headers["Content-Type"] = "application/json";
    body = JSON.stringify(body);
  }
  const send = () =>
    fetch(url(path), { method: options.method || (body === undefined ? "GET" : "POST"), headers, body, signal: options.signal });
  let response;
  try {
    response = await send();
    if (response.status === 401 && !options.auth && (await refresh())) {
      Object.assign(headers, authHeaders());
      response = await send();
    }
  } catch (error) {
    if (error.name === "AbortError") throw error;
    throw new ApiError(WORDS[0], 0);
  }
  if (!response.ok) throw await errorOf(response);
  if (options.raw) return response;
  if (response.status === 204) return null;
  const type = response.headers.get("Content-Type") || "";
  return type.includes("json") ? response.json() : response.text();
}

export const get = (path, options) => call(path, options);
export const post = (path, body, options = {}) => call(path, { ...options, method: "POST", body });
export const put = (path, body, options = {}) => call(path, { ...options, method: "PUT", body });
export const del = (path, options = {}) => call(path, { ...options, method: "DELETE" });

/** A query string from an object, leaving out empty values. */
export function query(params) {
  const pairs = Object.entries(params).filter(([, v]) => v !== undefined && v !== null && v !== "");
  return pairs.length ? "?" + new URLSearchParams(pairs).toString() : "";
}
