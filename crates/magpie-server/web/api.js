// HTTP calls and the login session of one browser tab (docs/web.md).
//
// The session (tokens, user, device) lives in sessionStorage: each tab is
// its own device, so two tabs can be two users. The access token is renewed
// a minute before it expires; a refresh token is used once (rotation,
// docs/protocol.md §3.5), so a failed renewal ends the session.

const KEY = "magpie.session";

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message || code || `HTTP ${status}`);
    this.status = status;
    this.code = code || "";
  }
}

let session = null;
let renewTimer = null;
let onEnded = () => {};

export function current() {
  return session;
}

/// Called when the session ends without the user asking (renewal refused).
export function onSessionEnded(fn) {
  onEnded = fn;
}

export async function call(method, path, body) {
  const headers = {};
  if (session) headers.authorization = `Bearer ${session.access_token}`;
  if (body !== undefined) headers["content-type"] = "application/json";
  let res;
  try {
    res = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (e) {
    throw new ApiError(0, "network", "the server cannot be reached");
  }
  const text = await res.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = null;
  }
  if (!res.ok) {
    const err = data?.error || {};
    if (res.status === 401 && err.code === "token_expired" && session) {
      await renew();
      return call(method, path, body);
    }
    throw new ApiError(res.status, err.code, err.message);
  }
  return data;
}

function deviceId() {
  let d = sessionStorage.getItem("magpie.device");
  if (!d) {
    const bytes = crypto.getRandomValues(new Uint8Array(6));
    d = "web-" + Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
    sessionStorage.setItem("magpie.device", d);
  }
  return d;
}

function keep(tokens, username) {
  session = {
    user_id: tokens.user_id,
    username,
    device: tokens.device,
    access_token: tokens.access_token,
    refresh_token: tokens.refresh_token,
    expires_at: Date.now() + tokens.expires_in * 1000,
  };
  sessionStorage.setItem(KEY, JSON.stringify(session));
  schedule();
}

function schedule() {
  clearTimeout(renewTimer);
  const wait = Math.max(5_000, session.expires_at - Date.now() - 60_000);
  renewTimer = setTimeout(() => renew().catch(() => {}), wait);
}

let renewing = null;
async function renew() {
  if (!renewing) {
    renewing = (async () => {
      const s = session;
      session = null; // the refresh call carries no bearer token
      try {
        const t = await call("POST", "/v1/auth/refresh", { refresh_token: s.refresh_token });
        keep(t, s.username);
      } catch (e) {
        if (e.code === "network") {
          session = s; // try again later: the token was not consumed
          renewTimer = setTimeout(() => renew().catch(() => {}), 10_000);
          throw e;
        }
        end();
        onEnded();
        throw e;
      }
    })().finally(() => {
      renewing = null;
    });
  }
  return renewing;
}

/// The session this tab kept, if any (a reload keeps the user logged in).
export function restore() {
  try {
    const s = JSON.parse(sessionStorage.getItem(KEY) || "null");
    if (!s || !s.refresh_token) return null;
    session = s;
    if (s.expires_at - Date.now() < 60_000) {
      return renew().then(() => session);
    }
    schedule();
    return Promise.resolve(session);
  } catch {
    return null;
  }
}

export async function register(username, password) {
  return call("POST", "/v1/auth/register", { username, password });
}

export async function login(username, password) {
  const t = await call("POST", "/v1/auth/login", { username, password, device: deviceId() });
  keep(t, username);
  return session;
}

export function end() {
  clearTimeout(renewTimer);
  session = null;
  sessionStorage.removeItem(KEY);
}
