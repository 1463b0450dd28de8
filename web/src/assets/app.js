// Tessera browser app: router, layout and start-up.

import { ApiError, isSignedIn, logout, onSessionChange, publicCall, restoreSession } from './api.js';
import { errorMessage, h } from './ui.js';
import { hasRole, loadMe, setFlash, setNavigate, state } from './state.js';
import { captureSetupToken, loginPage, registerPage, setupPage } from './pages/auth.js';
import { passwordPage, profilePage, sessionsPage } from './pages/account.js';
import { auditPage, clientsPage, keysPage, usersPage } from './pages/admin.js';

// `guest`: only when signed out; `auth`: needs a session; `admin`: shown in the admin nav.
const routes = {
  '/login': { title: 'Sign in', page: loginPage, guest: true },
  '/register': { title: 'Create account', page: registerPage, guest: true },
  '/setup': { title: 'Setup', page: setupPage, guest: true },
  '/profile': { title: 'Profile', page: profilePage, auth: true, nav: 'Profile' },
  '/sessions': { title: 'Sessions', page: sessionsPage, auth: true, nav: 'Sessions' },
  '/password': { title: 'Password', page: passwordPage, auth: true, nav: 'Password' },
  '/admin/users': { title: 'Users', page: usersPage, auth: true, admin: true, nav: 'Users' },
  '/admin/clients': { title: 'Clients', page: clientsPage, auth: true, admin: true, nav: 'Clients' },
  '/admin/keys': { title: 'Keys', page: keysPage, auth: true, admin: true, nav: 'Keys' },
  '/admin/audit': { title: 'Audit', page: auditPage, auth: true, admin: true, nav: 'Audit' },
};

const main = document.getElementById('main');
const topbar = document.getElementById('topbar');
const nav = document.getElementById('nav');
const account = document.getElementById('account');

function currentPath() {
  const p = location.pathname.replace(/\/+$/, '');
  return p || '/';
}

function navigate(path, { replace = false } = {}) {
  const url = new URL(path, location.origin);
  if (url.origin !== location.origin) return;
  const target = url.pathname + url.search;
  if (replace) history.replaceState(null, '', target);
  else if (target !== location.pathname + location.search) history.pushState(null, '', target);
  render();
}
setNavigate(navigate);

function renderChrome(path) {
  const signedIn = isSignedIn();
  topbar.hidden = !signedIn;
  if (!signedIn) {
    nav.replaceChildren();
    account.replaceChildren();
    return;
  }
  const link = (p) => h('a', {
    href: p, 'data-link': true, text: routes[p].nav,
    'aria-current': p === path ? 'page' : null,
    class: p === path ? 'active' : null,
  });
  const userLinks = Object.keys(routes).filter((p) => routes[p].nav && !routes[p].admin);
  const adminLinks = Object.keys(routes).filter((p) => routes[p].nav && routes[p].admin);
  const groups = [h('div', { class: 'nav-group' }, userLinks.map(link))];
  if (hasRole('admin')) {
    groups.push(h('div', { class: 'nav-group nav-admin', role: 'group', 'aria-label': 'Administration' },
      h('span', { class: 'nav-label', 'aria-hidden': 'true', text: 'Admin' }), adminLinks.map(link)));
  }
  nav.replaceChildren(...groups);
  const out = h('button', { type: 'button', class: 'btn btn-small btn-ghost', text: 'Sign out', 'data-testid': 'sign-out' });
  out.addEventListener('click', async () => {
    out.disabled = true;
    setFlash('You have been signed out.', 'info');
    try { await logout(); } catch { /* the session is cleared either way */ }
  });
  account.replaceChildren(
    h('span', { class: 'account-email', title: state.me ? state.me.email : '', text: state.me ? state.me.email : '' }),
    out,
  );
}

let renderSeq = 0;

function render() {
  renderSeq += 1;
  const path = currentPath();
  if (path === '/') {
    navigate(isSignedIn() ? '/profile' : '/login', { replace: true });
    return;
  }
  const route = routes[path];
  if (!route) {
    renderChrome(path);
    document.title = 'Not found · Tessera';
    main.replaceChildren(h('section', { class: 'card narrow' },
      h('h1', { tabindex: '-1', text: 'Page not found' }),
      h('p', {}, h('a', { href: '/', 'data-link': true, text: 'Go to the start page' }))));
    focusHeading();
    return;
  }
  if (route.auth && !isSignedIn()) {
    const next = path !== '/profile' ? `?next=${encodeURIComponent(path)}` : '';
    navigate(`/login${next}`, { replace: true });
    return;
  }
  if (route.guest && isSignedIn() && path !== '/setup') {
    navigate('/profile', { replace: true });
    return;
  }
  renderChrome(path);
  document.title = `${route.title} · Tessera`;
  let view;
  try {
    view = route.page();
  } catch (err) {
    console.error(err);
    view = h('div', { class: 'alert alert-error', role: 'alert', text: errorMessage(err) });
  }
  main.replaceChildren(view);
  main.dataset.route = path;
  focusHeading();
}

function focusHeading() {
  // Move focus to the new page's heading so keyboard and screen reader users start there.
  const heading = main.querySelector('h1');
  const active = document.activeElement;
  const autofocus = main.querySelector('[autofocus]');
  if (autofocus) autofocus.focus();
  else if (heading && (!active || active === document.body || !main.contains(active))) heading.focus({ preventScroll: true });
}

// In-app links: <a data-link> navigates without a page load.
document.addEventListener('click', (ev) => {
  const a = ev.target.closest('a[data-link]');
  if (!a || ev.defaultPrevented || ev.button !== 0 || ev.metaKey || ev.ctrlKey || ev.shiftKey || ev.altKey) return;
  ev.preventDefault();
  navigate(a.getAttribute('href'));
});
window.addEventListener('popstate', render);

onSessionChange(async (reason) => {
  if (reason === 'signed-in') {
    try { await loadMe(); } catch { /* shown by the page */ }
    renderChrome(currentPath());
  } else if (reason === 'refreshed') {
    // Roles may have changed since the last token; keep the nav honest.
    try { await loadMe(); } catch { /* keep the old profile */ }
    renderChrome(currentPath());
  } else if (reason === 'expired' || reason === 'signed-out-elsewhere' || reason === 'signed-out') {
    state.me = null;
    if (reason === 'expired') setFlash('Your session has ended. Please sign in again.', 'info');
    if (reason === 'signed-out-elsewhere') setFlash('You were signed out in another tab.', 'info');
    const path = currentPath();
    const route = routes[path];
    if (!route || route.auth) navigate('/login', { replace: true });
    else renderChrome(path);
  }
});

async function boot() {
  captureSetupToken();
  const path = currentPath();
  const configP = publicCall('GET', '/auth/config').then((c) => { Object.assign(state.config, c); }, () => {});
  // The setup page needs no session; everything else tries to restore one from the cookie.
  let restoreError = null;
  if (path !== '/setup' && path !== '/register') {
    try {
      await restoreSession();
    } catch (err) {
      restoreError = err;
    }
  }
  await configP;
  if (isSignedIn() && !state.me) {
    try { await loadMe(); } catch { /* pages load what they need */ }
  }
  if (restoreError instanceof ApiError) setFlash(errorMessage(restoreError), 'error');
  render();
}

boot();
