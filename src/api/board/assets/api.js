// The API client: every call carries the bearer token from the tab's session storage, and a
// non-2xx answer becomes an ApiError with the server's code, message and reasons. A 401 ends
// the session through the handler main.js registers (whenSessionEnds).
//
// Imports nothing; it builds no DOM.

const TOKEN_KEY = "phaseflow.token"; // sessionStorage only: never a URL, cookie or localStorage
const SESSION_ENDED = "your session ended: sign in again";

// Called with a message ("" when there simply is no token) when the session must end.
let endSession = () => {};

export function whenSessionEnds(handler) {
  endSession = handler;
}

// A non-2xx answer: {"error": {"code", "message", "reasons"}}.
export class ApiError extends Error {
  constructor(status, code, message, reasons) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.code = code;
    this.reasons = reasons;
  }
}

// Thrown when a 401 ended the session (the sign-in page is already showing).
export class SessionEnded extends Error {
  constructor() {
    super("session ended");
    this.name = "SessionEnded";
  }
}

// Errors that need no message: an aborted request (page left) or an ended session.
export function isQuiet(err) {
  return !err || err.name === "AbortError" || err instanceof SessionEnded;
}

export function getToken() {
  try { return sessionStorage.getItem(TOKEN_KEY); } catch (_) { return null; }
}

export function setToken(token) {
  try {
    if (token) sessionStorage.setItem(TOKEN_KEY, token);
    else sessionStorage.removeItem(TOKEN_KEY);
  } catch (_) { /* storage disabled: the session lasts as long as the page */ }
}

export async function errorFrom(response) {
  let payload = null;
  try { payload = await response.json(); } catch (_) { /* not JSON */ }
  const e = (payload && payload.error) || {};
  return new ApiError(
    response.status,
    e.code || "http_" + response.status,
    e.message || response.statusText || "request failed (" + response.status + ")",
    Array.isArray(e.reasons) ? e.reasons : []);
}

// fetch with the bearer token; a 401 ends the session (only if the token is still current).
export async function authFetch(path, options) {
  const token = getToken();
  if (!token) {
    endSession("");
    throw new SessionEnded();
  }
  const headers = Object.assign({ Authorization: "Bearer " + token }, options.headers);
  const response = await fetch(path, Object.assign({}, options, {
    headers, credentials: "omit", cache: "no-store",
  }));
  if (response.status === 401) {
    if (getToken() === token) endSession(SESSION_ENDED);
    throw new SessionEnded();
  }
  return response;
}

// JSON call: GET by default; a body makes it a JSON POST.
export async function api(path, opts) {
  const { method = "GET", body, signal } = opts || {};
  const options = { method, signal, headers: { Accept: "application/json" } };
  if (body !== undefined) {
    options.headers["Content-Type"] = "application/json";
    options.body = JSON.stringify(body);
  }
  const response = await authFetch(path, options);
  if (!response.ok) throw await errorFrom(response);
  if (response.status === 204) return null;
  return response.json();
}
