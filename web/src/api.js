// Calls to the agent's client API with the session's bearer token.
const TOKEN_KEY = "spillway.token";
let token = sessionStorage.getItem(TOKEN_KEY) || "";
const authListeners = new Set();

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

export function getToken() {
  return token;
}

export function setToken(value) {
  token = value;
  if (value) sessionStorage.setItem(TOKEN_KEY, value);
  else sessionStorage.removeItem(TOKEN_KEY);
}

/** Called with the error when the agent refuses the token (the page asks for a new one). */
export function onAuthFailure(listener) {
  authListeners.add(listener);
  return () => authListeners.delete(listener);
}

export function authHeaders() {
  return token ? { Authorization: `Bearer ${token}` } : {};
}

async function failure(response) {
  let code = "http_" + response.status;
  let message = response.statusText || `HTTP ${response.status}`;
  try {
    const body = await response.json();
    if (body && body.error) ({ code, message } = body.error);
  } catch {
    // not JSON: keep the status line
  }
  const error = new ApiError(response.status, code, message);
  if (response.status === 401) authListeners.forEach((listener) => listener(error));
  return error;
}

export async function api(path, { method = "GET", body, signal } = {}) {
  const headers = { ...authHeaders() };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(path, {
    method,
    headers,
    signal,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (!response.ok) throw await failure(response);
  return response.json();
}

/** An object URL for an image the API serves (an <img> cannot send the token itself).
 * The caller revokes it; the HTTP cache revalidates by ETag, so a repeat is cheap. */
export async function imageUrl(path, signal) {
  const response = await fetch(path, { headers: authHeaders(), signal });
  if (!response.ok) throw await failure(response);
  return URL.createObjectURL(await response.blob());
}
