// The signed-in user's own pages: profile, sessions, password.

import { accessTokenExpiresAt, api, changePassword, logout, logoutAll, onSessionChange } from '../api.js';
import {
  alertBox, busy, confirmDialog, errorMessage, field, fmtDate, fmtTime, h, parseUserAgent,
  roleBadges, timeEl, toast, toDate,
} from '../ui.js';
import { loadMe, navigate, setFlash, state } from '../state.js';

/** Page header: h1 (focus target after navigation) and an optional lead line and actions. */
export function pageHead(title, lead, ...actions) {
  return h('div', { class: 'page-head' },
    h('div', {},
      h('h1', { tabindex: '-1', text: title }),
      lead ? h('p', { class: 'lead', text: lead }) : null,
    ),
    actions.length ? h('div', { class: 'page-actions' }, ...actions) : null,
  );
}

/** Render a failed load inside `container`, with a retry button. */
export function loadError(container, err, retry, context) {
  container.replaceChildren(h('div', { class: 'alert alert-error', role: 'alert' },
    h('span', { text: errorMessage(err, context) }),
    retry ? h('button', { type: 'button', class: 'btn btn-small', onclick: retry, text: 'Try again' }) : null,
  ));
}

function countdown(ms) {
  const s = Math.max(0, Math.round((ms - Date.now()) / 1000));
  const m = Math.floor(s / 60);
  return m ? `${m} min ${String(s % 60).padStart(2, '0')} s` : `${s} s`;
}

/** GET /profile */
export function profilePage() {
  const body = h('div', { class: 'card' }, h('p', { class: 'loading', text: 'Loading profile…' }));
  const signOut = h('button', { type: 'button', class: 'btn', text: 'Sign out' });
  signOut.addEventListener('click', async () => {
    signOut.disabled = true;
    try { await logout(); } catch { /* state is cleared either way */ }
  });

  const render = (me) => {
    const expiry = h('span', { class: 'mono' });
    const remaining = h('span', { class: 'muted' });
    const update = () => {
      const at = accessTokenExpiresAt() || (toDate(me.token_expires_at)?.getTime() ?? 0);
      expiry.textContent = at ? fmtTime(at) : '—';
      remaining.textContent = at ? ` (in ${countdown(at)}; renewed automatically)` : '';
    };
    update();
    const timer = setInterval(() => {
      if (!expiry.isConnected) { clearInterval(timer); return; }
      update();
    }, 1000);
    const row = (label, value) => [h('dt', { text: label }), h('dd', {}, value)];
    body.replaceChildren(
      h('div', { class: 'profile-head' },
        h('div', { class: 'avatar', 'aria-hidden': 'true', text: (me.email || '?').slice(0, 1).toUpperCase() }),
        h('div', {},
          h('p', { class: 'profile-email', 'data-testid': 'profile-email', text: me.email }),
          roleBadges(me.roles),
        ),
      ),
      h('dl', { class: 'details' },
        row('User ID', h('span', { class: 'mono', text: me.id })),
        row('Roles', roleBadges(me.roles)),
        row('Member since', fmtDate(me.created_at)),
        row('This session', h('span', { class: 'mono', text: me.session_id || '—' })),
        row('Access token expires', h('span', { 'data-testid': 'token-expiry' }, expiry, remaining)),
      ),
    );
  };

  const load = async () => {
    try {
      render(await loadMe());
    } catch (err) {
      loadError(body, err, load);
    }
  };
  load();
  // A silent refresh gives a new expiry; the countdown reads it from api.js each second.
  const off = onSessionChange((reason) => {
    if (!body.isConnected) { off(); return; }
    if (reason === 'refreshed' && state.me) render(state.me);
  });

  return h('section', {},
    pageHead('Your profile', 'Your account and the session you are using now.', signOut),
    body,
    h('div', { class: 'card card-muted' },
      h('h2', { text: 'How you stay signed in' }),
      h('p', {}, 'This page holds a short-lived access token in memory only and renews it shortly before it expires. ',
        'Your browser keeps a refresh cookie that scripts cannot read. Closing every tab and coming back restores the session from that cookie; ',
        h('a', { href: '/sessions', 'data-link': true, text: 'signing out a session' }), ' ends it everywhere at once.'),
    ),
  );
}

/** GET /sessions */
export function sessionsPage() {
  const list = h('div', { class: 'card card-flush' }, h('p', { class: 'loading pad', text: 'Loading sessions…' }));
  const alert = alertBox();

  const endOthers = h('button', { type: 'button', class: 'btn', text: 'Sign out other sessions' });
  const everywhere = h('button', { type: 'button', class: 'btn btn-danger', text: 'Sign out everywhere' });

  const load = async () => {
    let data;
    try {
      data = await api('GET', '/auth/sessions');
    } catch (err) {
      loadError(list, err, load);
      return;
    }
    const sessions = Array.isArray(data && data.sessions) ? data.sessions : [];
    // Current first, then most recently used.
    sessions.sort((a, b) => (b.current - a.current)
      || ((toDate(b.last_used_at)?.getTime() ?? 0) - (toDate(a.last_used_at)?.getTime() ?? 0)));
    endOthers.disabled = !sessions.some((s) => !s.current);
    if (!sessions.length) {
      list.replaceChildren(h('p', { class: 'empty', text: 'No active sessions.' }));
      return;
    }
    list.replaceChildren(h('ul', { class: 'session-list', 'aria-label': 'Active sessions' },
      sessions.map((s) => sessionItem(s))));
  };

  const sessionItem = (s) => {
    const ua = parseUserAgent(s.user_agent);
    const end = h('button', {
      type: 'button',
      class: s.current ? 'btn btn-small' : 'btn btn-small btn-danger-outline',
      text: s.current ? 'Sign out' : 'End session',
      'aria-label': s.current ? 'Sign out of this device' : `End session on ${ua.label}`,
    });
    end.addEventListener('click', async () => {
      if (s.current) {
        try { await logout(); } catch { /* cleared either way */ }
        return;
      }
      const ok = await confirmDialog({
        title: 'End this session?',
        message: `${ua.label} (${s.ip || 'unknown IP'}) will be signed out immediately.`,
        confirm: 'End session',
        danger: true,
      });
      if (!ok) return;
      end.disabled = true;
      try {
        await api('DELETE', `/auth/sessions/${encodeURIComponent(s.id)}`);
        toast(`Signed out ${ua.label}.`);
        await load();
      } catch (err) {
        end.disabled = false;
        alert.show(errorMessage(err));
      }
    });
    return h('li', { class: `session${s.current ? ' session-current' : ''}`, 'data-session-id': s.id, 'data-current': s.current ? 'true' : 'false' },
      h('div', { class: `device-icon${ua.mobile ? ' device-mobile' : ''}`, 'aria-hidden': 'true' }),
      h('div', { class: 'session-main' },
        h('p', { class: 'session-title' },
          h('span', { class: 'session-device', title: s.user_agent || null, text: ua.label }),
          s.current ? h('span', { class: 'badge badge-current', text: 'This device' }) : null,
        ),
        h('dl', { class: 'session-meta' },
          h('div', {}, h('dt', { text: 'IP' }), h('dd', { class: 'mono', text: s.ip || '—' })),
          h('div', {}, h('dt', { text: 'Signed in' }), h('dd', {}, timeEl(s.created_at))),
          h('div', {}, h('dt', { text: 'Last active' }), h('dd', {}, timeEl(s.last_used_at, true))),
          h('div', {}, h('dt', { text: 'Expires' }), h('dd', {}, timeEl(s.expires_at))),
        ),
        s.user_agent ? h('p', { class: 'ua', title: s.user_agent, text: s.user_agent }) : null,
      ),
      h('div', { class: 'session-actions' }, end),
    );
  };

  endOthers.addEventListener('click', async () => {
    const ok = await confirmDialog({
      title: 'Sign out other sessions?',
      message: 'Every other device signed in to your account will be signed out. This device stays signed in.',
      confirm: 'Sign out others',
      danger: true,
    });
    if (!ok) return;
    endOthers.disabled = true;
    try {
      await api('DELETE', '/auth/sessions');
      toast('Signed out every other session.');
    } catch (err) {
      alert.show(errorMessage(err));
    }
    await load();
  });

  everywhere.addEventListener('click', async () => {
    const ok = await confirmDialog({
      title: 'Sign out everywhere?',
      message: 'Every session, including this one, will end. You will need to sign in again on every device.',
      confirm: 'Sign out everywhere',
      danger: true,
    });
    if (!ok) return;
    everywhere.disabled = true;
    setFlash('You have been signed out on every device.', 'info');
    try { await logoutAll(); } catch (err) { setFlash(errorMessage(err)); navigate('/login'); }
  });

  load();
  const refreshBtn = h('button', { type: 'button', class: 'btn', text: 'Refresh', onclick: () => load() });
  return h('section', {},
    pageHead('Sessions', 'Devices and apps signed in to your account.', refreshBtn),
    alert.el,
    list,
    h('div', { class: 'card danger-zone' },
      h('div', {},
        h('h2', { text: 'End other sessions' }),
        h('p', { class: 'muted', text: 'Lost a device or signed in somewhere public? End every session except this one, or all of them.' }),
      ),
      h('div', { class: 'actions' }, endOthers, everywhere),
    ),
  );
}

/** GET /password */
export function passwordPage() {
  const min = state.config.password_min_length || 8;
  const alert = alertBox();
  const current = field('Current password', { name: 'current-password', type: 'password', autocomplete: 'current-password', required: true });
  const next = field('New password', { name: 'new-password', type: 'password', autocomplete: 'new-password', required: true, minlength: min }, `At least ${min} characters.`);
  const confirm = field('Confirm new password', { name: 'confirm-password', type: 'password', autocomplete: 'new-password', required: true, minlength: min });
  const submit = h('button', { type: 'submit', class: 'btn btn-primary', text: 'Change password' });
  const form = h('form', { class: 'form' }, current.wrap, next.wrap, confirm.wrap, h('div', { class: 'actions' }, submit));
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    alert.clear();
    if (next.input.value.length < min) { alert.show(`The new password must be at least ${min} characters.`); next.input.focus(); return; }
    if (next.input.value !== confirm.input.value) { alert.show('The new passwords do not match.'); confirm.input.focus(); return; }
    await busy(form, async () => {
      try {
        await changePassword(current.input.value, next.input.value);
        form.reset();
        alert.show('Password changed. Every other session was signed out; this one stays signed in.', 'success');
        toast('Password changed.');
      } catch (err) {
        if (err.status === 401 && err.code === 'invalid_grant') {
          alert.show('The current password is wrong.');
          current.input.focus();
        } else if (err.status === 400 && /current/i.test(err.description || '')) {
          alert.show('The current password is wrong.');
          current.input.focus();
        } else {
          alert.show(errorMessage(err));
        }
      }
    });
  });
  return h('section', { class: 'narrow' },
    pageHead('Change password', 'Changing your password signs out every other session.'),
    h('div', { class: 'card' }, alert.el, form),
  );
}

