// App-wide state shared by the router and the pages: server config, the signed-in user's
// profile, a one-shot flash message, and navigation. No token lives here (see api.js).

import { api } from './api.js';

/** Server config from GET /auth/config (registration_open, setup_required, ...). */
export const state = {
  config: { registration_open: false, setup_required: false, password_min_length: 8 },
  /** GET /auth/me result, or null when signed out. */
  me: null,
};

let flash = null;

/** Leave a message for the next page rendered (e.g. "Your session has ended"). */
export function setFlash(message, kind = 'info') {
  flash = { message, kind };
}

/** Take the pending flash message, if any. */
export function takeFlash() {
  const f = flash;
  flash = null;
  return f;
}

let navigateImpl = () => {};

/** Install the router's navigate function (app.js does this at boot). */
export function setNavigate(fn) {
  navigateImpl = fn;
}

/**
 * Go to an app route.
 * @param {string} path e.g. '/sessions'
 * @param {{replace?: boolean}} [opts]
 */
export function navigate(path, opts = {}) {
  navigateImpl(path, opts);
}

/** Reload the profile of the signed-in user (roles may have changed). */
export async function loadMe() {
  state.me = await api('GET', '/auth/me');
  return state.me;
}

/** True when the signed-in user holds `role`. */
export function hasRole(role) {
  return !!(state.me && Array.isArray(state.me.roles) && state.me.roles.includes(role));
}
