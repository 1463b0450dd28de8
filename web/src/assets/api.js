// Tessera API client and token handling.
//
// Where each credential lives (RFC 9700 §4.14 / §2.2, OAuth 2.0 for Browser-Based Apps):
// - the access token lives only in the module variable `accessToken` below: never in
//   localStorage, sessionStorage, a cookie, the URL, or a message to another tab;
// - the refresh token lives only in the `tessera_refresh` cookie, which the server sets
//   HttpOnly; Secure; SameSite=Strict; Path=/auth. This code never sees it.
// - cookie-authenticated calls carry `X-Tessera-CSRF: 1` (the server demands it, and a
//   cross-site form cannot send custom headers).
//
// Refresh: silently at ~80% of `expires_in`, once on a 401 before retrying, and on page load
// to restore the session from the cookie. Tabs share the cookie, so refreshes are serialised
// across tabs with the Web Locks API; the server's grace window (a retry with the same refresh
// token returns the same successor) covers browsers without it.

/** Shape of an API failure: HTTP status plus the RFC 6749 §5.2 error body. */
export class ApiError extends Error {
  /**
   * @param {number} status HTTP status (0 for a network failure)
   * @param {string} code the `error` field
   * @param {string} description the `error_description` field or a fallback
   * @param {number|null} retryAfter seconds to wait, from `Retry-After` or `retry_after`
   */
  constructor(status, code, description, retryAfter = null) {
    super(description || code || `HTTP ${status}`);
    this.status = status;
    this.code = code;
    this.description = description;
    this.retryAfter = retryAfter;
  }
}

const CSRF = { 'X-Tessera-CSRF': '1' };
const LOCK_NAME = 'tessera-refresh';
/** Refresh at this fraction of the access token lifetime. */
const REFRESH_AT = 0.8;

let accessToken = null;
let expiresAt = 0; // ms since epoch
let refreshTimer = null;
let inflight = null;
const listeners = new Set();

// Tabs tell each other "signed out" (never a token) so every tab returns to sign-in at once.
const channel = typeof BroadcastChannel === 'function' ? new BroadcastChannel('tessera') : null;
if (channel) {
  channel.onmessage = (ev) => {
    if (ev.data && ev.data.type === 'signed-out') clearSession('signed-out-elsewhere', false);
  };
}

/**
 * Subscribe to session changes. The callback gets a reason string:
 * 'signed-in', 'refreshed', 'signed-out', 'signed-out-elsewhere', 'expired'.
 * @param {(reason: string) => void} fn
 */
export function onSessionChange(fn) {
  listeners.add(fn);
  return () => listeners.delete(fn);
}

function emit(reason) {
  for (const fn of listeners) {
    try { fn(reason); } catch (e) { console.error(e); }
  }
}

/** True when an access token is held in memory. */
export function isSignedIn() {
  return accessToken !== null;
}

/** When the in-memory access token expires (ms since epoch), or 0. */
export function accessTokenExpiresAt() {
  return expiresAt;
}

function setTokens(body, reason) {
  if (!body || typeof body.access_token !== 'string') {
    throw new ApiError(502, 'invalid_response', 'The server sent an unexpected response.');
  }
  accessToken = body.access_token;
  const lifetime = Math.max(Number(body.expires_in) || 0, 1);
  expiresAt = Date.now() + lifetime * 1000;
  scheduleRefresh(lifetime);
  emit(reason);
}

function scheduleRefresh(lifetimeSeconds) {
  if (refreshTimer) clearTimeout(refreshTimer);
  const delay = Math.max(lifetimeSeconds * REFRESH_AT * 1000, 1000);
  refreshTimer = setTimeout(() => {
    refresh().catch(() => { /* clearSession already ran */ });
  }, delay);
}

/**
 * Forget the session in this tab.
 * @param {string} reason passed to listeners
 * @param {boolean} broadcast tell other tabs too
 */
export function clearSession(reason = 'signed-out', broadcast = true) {
  const had = accessToken !== null;
  accessToken = null;
  expiresAt = 0;
  if (refreshTimer) clearTimeout(refreshTimer);
  refreshTimer = null;
  if (broadcast && channel) channel.postMessage({ type: 'signed-out' });
  if (had || reason !== 'expired') emit(reason);
}

// Background tabs throttle timers; catch up when the tab becomes visible again.
if (typeof document !== 'undefined') {
  document.addEventListener('visibilitychange', () => {
    if (document.visibilityState === 'visible' && accessToken && Date.now() > expiresAt - 5000) {
      refresh().catch(() => {});
    }
  });
}

async function parseError(res) {
  let body = null;
  try { body = await res.json(); } catch { /* not JSON */ }
  let retry = null;
  const header = res.headers.get('Retry-After');
  if (header && /^\d+$/.test(header.trim())) retry = Number(header.trim());
  if (body && Number.isFinite(Number(body.retry_after))) retry = Number(body.retry_after);
  return new ApiError(
    res.status,
    (body && body.error) || 'http_error',
    (body && body.error_description) || res.statusText || `HTTP ${res.status}`,
    retry,
  );
}

async function doFetch(path, init) {
  try {
    return await fetch(path, { credentials: 'same-origin', cache: 'no-store', ...init });
  } catch {
    throw new ApiError(0, 'network_error', 'Cannot reach the server. Check your connection and try again.');
  }
}

async function refreshNow() {
  const res = await doFetch('/auth/refresh', { method: 'POST', headers: { ...CSRF } });
  if (!res.ok) throw await parseError(res);
  setTokens(await res.json(), 'refreshed');
}

/**
 * Get a fresh access token from the refresh cookie. One refresh at a time per tab (callers
 * share the in-flight promise) and, with Web Locks, one at a time across tabs.
 * Rejects with ApiError; on an auth failure the session is cleared first.
 * @returns {Promise<void>}
 */
export function refresh() {
  if (inflight) return inflight;
  const run = async () => {
    try {
      if (typeof navigator !== 'undefined' && navigator.locks && navigator.locks.request) {
        await navigator.locks.request(LOCK_NAME, { mode: 'exclusive' }, refreshNow);
      } else {
        await refreshNow();
      }
    } catch (err) {
      // Only a definite "no session" ends the session; a network blip or a 5xx keeps the
      // current token for a later retry.
      if (err instanceof ApiError && (err.status === 400 || err.status === 401 || err.status === 403)) {
        clearSession('expired', false);
      }
      throw err;
    }
  };
  inflight = run().finally(() => { inflight = null; });
  return inflight;
}

/**
 * Restore the session on page load from the refresh cookie. Resolves true when signed in.
 * @returns {Promise<boolean>}
 */
export async function restoreSession() {
  try {
    await refresh();
    return true;
  } catch (err) {
    if (err instanceof ApiError && err.status === 0) throw err;
    return false;
  }
}

// A 401 that is about a password in the request body (`invalid_grant`, e.g. a wrong current
// password) is not about the access token; refreshing would not help.
async function isCredentialError(res) {
  const www = res.headers.get('WWW-Authenticate') || '';
  if (/invalid_token/.test(www)) return false;
  try {
    const body = await res.clone().json();
    return body && body.error === 'invalid_grant';
  } catch {
    return false;
  }
}

/**
 * Call the API with the in-memory access token. On a 401 refresh once and retry once.
 * @param {string} method
 * @param {string} path
 * @param {object} [body] JSON body
 * @returns {Promise<any>} parsed JSON or null for 204
 */
export async function api(method, path, body) {
  const send = () => {
    const headers = { Accept: 'application/json' };
    if (accessToken) headers.Authorization = `Bearer ${accessToken}`;
    const init = { method, headers };
    if (body !== undefined) {
      headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    return doFetch(path, init);
  };
  let res = await send();
  if (res.status === 401 && !(await isCredentialError(res))) {
    // The token expired, or the server cut it off (password change, role change,
    // revoked session). A refresh tells which: a new token, or no session at all.
    try {
      await refresh();
    } catch (err) {
      if (err instanceof ApiError && err.status !== 0 && err.status < 500) {
        throw new ApiError(401, 'session_expired', 'Your session has ended. Please sign in again.');
      }
      throw err;
    }
    res = await send();
    if (res.status === 401) {
      clearSession('expired', false);
      throw new ApiError(401, 'session_expired', 'Your session has ended. Please sign in again.');
    }
  }
  if (!res.ok) throw await parseError(res);
  if (res.status === 204) return null;
  const text = await res.text();
  return text ? JSON.parse(text) : null;
}

/** Unauthenticated JSON call (config, setup, register). */
export async function publicCall(method, path, body) {
  const init = { method, headers: { Accept: 'application/json' } };
  if (body !== undefined) {
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  const res = await doFetch(path, init);
  if (!res.ok) throw await parseError(res);
  if (res.status === 204) return null;
  const text = await res.text();
  return text ? JSON.parse(text) : null;
}

/**
 * Password sign-in. The server sets the refresh cookie; the access token stays here.
 * @param {string} email
 * @param {string} password
 */
export async function login(email, password) {
  const body = await publicCall('POST', '/auth/login', { email, password });
  setTokens(body, 'signed-in');
  return body;
}

/** Change password; the server answers with fresh tokens for this session. */
export async function changePassword(currentPassword, newPassword) {
  const body = await api('POST', '/auth/password', {
    current_password: currentPassword,
    new_password: newPassword,
  });
  setTokens(body, 'refreshed');
  return body;
}

async function endSession(path) {
  // Bearer when we have one; the cookie + CSRF header also works (and clears the cookie).
  const headers = { ...CSRF };
  if (accessToken) headers.Authorization = `Bearer ${accessToken}`;
  try {
    const res = await doFetch(path, { method: 'POST', headers });
    if (!res.ok && res.status !== 401) throw await parseError(res);
    if (res.status === 401) {
      // Token stale: try again with the cookie alone so the server still revokes it.
      const retry = await doFetch(path, { method: 'POST', headers: { ...CSRF } });
      if (!retry.ok && retry.status !== 401) throw await parseError(retry);
    }
  } finally {
    clearSession('signed-out', true);
  }
}

/** Sign out this session. */
export function logout() {
  return endSession('/auth/logout');
}

/** Sign out every session of this user, on every device. */
export function logoutAll() {
  return endSession('/auth/logout-all');
}
