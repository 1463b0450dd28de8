// Sign-in, registration and first-run setup pages.

import { ApiError, login, publicCall } from '../api.js';
import { alertBox, busy, errorMessage, field, h } from '../ui.js';
import { navigate, setFlash, state, takeFlash } from '../state.js';

function authShell(title, subtitle, ...content) {
  return h('section', { class: 'auth' },
    h('div', { class: 'auth-brand' },
      h('img', { src: '/assets/favicon.svg', alt: '', width: 40, height: 40 }),
      h('span', { text: 'Tessera' }),
    ),
    h('div', { class: 'card auth-card' },
      h('h1', { tabindex: '-1', text: title }),
      subtitle ? h('p', { class: 'lead', text: subtitle }) : null,
      ...content,
    ),
  );
}

/** Where to go after signing in: `?next=` when it names an app path, else the profile. */
function nextPath() {
  const next = new URLSearchParams(location.search).get('next');
  if (next && next.startsWith('/') && !next.startsWith('//') && !next.startsWith('/login')) return next;
  return '/profile';
}

/**
 * Disable `button` for `seconds`, counting down in its label (after a 429).
 * Returns immediately; the button comes back by itself.
 */
function holdButton(button, seconds, label) {
  let left = Math.ceil(seconds);
  button.disabled = true;
  const tick = () => {
    if (!button.isConnected) return;
    if (left <= 0) {
      button.disabled = false;
      button.textContent = label;
      return;
    }
    button.textContent = `Try again in ${left}s`;
    left -= 1;
    setTimeout(tick, 1000);
  };
  tick();
}

/** GET /login */
export function loginPage() {
  const alert = alertBox();
  const flash = takeFlash();
  if (flash) alert.show(flash.message, flash.kind);
  const email = field('Email', { name: 'email', type: 'email', autocomplete: 'username', required: true, autofocus: true });
  const password = field('Password', { name: 'password', type: 'password', autocomplete: 'current-password', required: true });
  const submit = h('button', { type: 'submit', class: 'btn btn-primary btn-block', text: 'Sign in' });
  const form = h('form', { class: 'form', novalidate: false }, email.wrap, password.wrap, submit);
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    alert.clear();
    let wait = 0;
    await busy(form, async () => {
      try {
        await login(email.input.value.trim(), password.input.value);
        navigate(nextPath(), { replace: true });
      } catch (err) {
        alert.show(errorMessage(err, 'login'));
        if (err instanceof ApiError && err.status === 429) wait = err.retryAfter || 5;
        if (err instanceof ApiError && err.status === 401) {
          password.input.value = '';
          password.input.focus();
        }
      }
    });
    if (wait) holdButton(submit, wait, 'Sign in');
  });

  const notes = [];
  const extras = [];
  if (state.config.setup_required) {
    notes.push(h('p', { class: 'alert alert-info' },
      'This server has no accounts yet. Open the one-time setup link that ',
      h('code', { text: 'tessera serve' }),
      ' printed when it started.'));
  }
  if (state.config.registration_open) {
    extras.push(h('p', { class: 'switch' }, 'New here? ', h('a', { href: '/register', 'data-link': true, text: 'Create an account' })));
  }
  return authShell('Sign in', 'Use your Tessera account.', alert.el, ...notes, form, ...extras);
}

function passwordPair(minLength) {
  const hint = `At least ${minLength} characters.`;
  const pw = field('Password', { name: 'new-password', type: 'password', autocomplete: 'new-password', required: true, minlength: minLength }, hint);
  const confirm = field('Confirm password', { name: 'confirm-password', type: 'password', autocomplete: 'new-password', required: true, minlength: minLength });
  const check = () => {
    if (pw.input.value.length < minLength) return `The password must be at least ${minLength} characters.`;
    if (pw.input.value !== confirm.input.value) return 'The two passwords do not match.';
    return null;
  };
  return { pw, confirm, check };
}

/** GET /register */
export function registerPage() {
  if (!state.config.registration_open) {
    return authShell('Registration is closed', 'Ask an administrator to create an account for you.',
      h('p', { class: 'switch' }, h('a', { href: '/login', 'data-link': true, text: 'Back to sign in' })));
  }
  const min = state.config.password_min_length || 8;
  const alert = alertBox();
  const email = field('Email', { name: 'email', type: 'email', autocomplete: 'username', required: true, autofocus: true });
  const pair = passwordPair(min);
  const submit = h('button', { type: 'submit', class: 'btn btn-primary btn-block', text: 'Create account' });
  const form = h('form', { class: 'form' }, email.wrap, pair.pw.wrap, pair.confirm.wrap, submit);
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    alert.clear();
    const problem = pair.check();
    if (problem) { alert.show(problem); return; }
    let wait = 0;
    await busy(form, async () => {
      try {
        await publicCall('POST', '/auth/register', { email: email.input.value.trim(), password: pair.pw.input.value });
      } catch (err) {
        alert.show(errorMessage(err, 'register'));
        if (err instanceof ApiError && err.status === 429) wait = err.retryAfter || 5;
        return;
      }
      // The server answers 201 for an existing email too (no enumeration), so signing in is
      // what tells whether this password opens the account.
      try {
        await login(email.input.value.trim(), pair.pw.input.value);
        navigate('/profile', { replace: true });
      } catch {
        setFlash('Your account is ready. Please sign in.', 'info');
        navigate('/login', { replace: true });
      }
    });
    if (wait) holdButton(submit, wait, 'Create account');
  });
  return authShell('Create your account', null, alert.el, form,
    h('p', { class: 'switch' }, 'Already have an account? ', h('a', { href: '/login', 'data-link': true, text: 'Sign in' })));
}

// The setup token is read from the URL fragment once and then removed from the address bar
// and history, so it is not left behind in the tab's history or a bookmark. Fragments are
// never sent to the server in requests or Referer headers.
let setupToken = null;

/** Capture `#token=` from the setup link before anything else touches the URL. */
export function captureSetupToken() {
  if (location.pathname !== '/setup') return;
  const params = new URLSearchParams(location.hash.slice(1));
  const token = params.get('token');
  if (token) {
    setupToken = token;
    history.replaceState(history.state, '', '/setup');
  }
}

/** GET /setup#token=... */
export function setupPage() {
  if (!state.config.setup_required) {
    return authShell('Setup is complete', 'This server already has an administrator.',
      h('p', { class: 'switch' }, h('a', { href: '/login', 'data-link': true, class: 'btn btn-primary', text: 'Go to sign in' })));
  }
  if (!setupToken) {
    return authShell('First-run setup', null,
      h('p', {}, 'Open the one-time setup link that ', h('code', { text: 'tessera serve' }),
        ' printed when it started. It looks like ', h('code', { text: '/setup#token=…' }), '.'));
  }
  const min = state.config.password_min_length || 8;
  const alert = alertBox();
  const email = field('Administrator email', { name: 'email', type: 'email', autocomplete: 'username', required: true, autofocus: true });
  const pair = passwordPair(min);
  const submit = h('button', { type: 'submit', class: 'btn btn-primary btn-block', text: 'Create administrator' });
  const form = h('form', { class: 'form' }, email.wrap, pair.pw.wrap, pair.confirm.wrap, submit);
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    alert.clear();
    const problem = pair.check();
    if (problem) { alert.show(problem); return; }
    await busy(form, async () => {
      const addr = email.input.value.trim();
      try {
        await publicCall('POST', '/auth/setup', { token: setupToken, email: addr, password: pair.pw.input.value });
      } catch (err) {
        alert.show(err instanceof ApiError && err.status === 403
          ? 'This setup link is not valid any more. Setup may already be complete; try signing in.'
          : errorMessage(err));
        return;
      }
      setupToken = null;
      state.config.setup_required = false;
      try {
        await login(addr, pair.pw.input.value);
        navigate('/profile', { replace: true });
      } catch (err) {
        setFlash(`Administrator created. ${errorMessage(err, 'login')}`, 'info');
        navigate('/login', { replace: true });
      }
    });
  });
  return authShell('Create the first administrator',
    'This one-time step creates the administrator account for this Tessera server.',
    alert.el, form);
}

