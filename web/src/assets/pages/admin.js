// Admin pages: users, OAuth clients, signing keys, audit log. The server enforces the
// `admin` role on every /admin call; these pages only render what it returns, and show a
// clear message when it answers 403.

import { ApiError, api } from '../api.js';
import {
  alertBox, busy, confirmDialog, errorMessage, field, h, roleBadges, timeEl, toast, uid,
} from '../ui.js';
import { state } from '../state.js';
import { loadError, pageHead } from './account.js';

const PAGE = 50;

function parseList(text) {
  return text.split(/[\s,]+/).map((s) => s.trim()).filter(Boolean);
}

/** A table with a header row; rows get `data-label` per cell for the phone layout. */
function table(caption, columns, rows) {
  return h('div', { class: 'table-wrap' },
    h('table', { class: 'table' },
      h('caption', { class: 'sr-only', text: caption }),
      h('thead', {}, h('tr', {}, columns.map((c) => h('th', { scope: 'col', text: c })))),
      h('tbody', {}, rows.map((cells) => h('tr', {},
        cells.map((cell, i) => h('td', { 'data-label': columns[i] }, cell))))),
    ),
  );
}

function denied(container, err, retry) {
  if (err instanceof ApiError && err.status === 403) {
    // Nothing on this page works without the role: leave only the heading and the reason.
    const section = container.closest('section');
    if (section) {
      for (const el of section.children) {
        if (el !== container && !el.classList.contains('page-head')) el.hidden = true;
      }
      section.querySelectorAll('.page-actions, .page-head .lead').forEach((el) => { el.hidden = true; });
    }
    container.className = 'denied';
    container.replaceChildren(h('div', { class: 'alert alert-error', role: 'alert', 'data-testid': 'admin-denied' },
      'You need the admin role to use this page. If it was removed recently, ask another administrator.'));
    return;
  }
  loadError(container, err, retry, 'admin');
}

/** GET /admin/users */
export function usersPage() {
  const alert = alertBox();
  const list = h('div', { class: 'card card-flush' }, h('p', { class: 'loading pad', text: 'Loading users…' }));
  let offset = 0;
  let search = '';

  const searchField = field('Search users', { name: 'search', type: 'search', placeholder: 'Email contains…', autocomplete: 'off' });
  searchField.wrap.classList.add('field-inline');
  const searchForm = h('form', { class: 'toolbar', role: 'search' },
    searchField.wrap,
    h('button', { type: 'submit', class: 'btn', text: 'Search' }),
  );
  searchForm.addEventListener('submit', (ev) => {
    ev.preventDefault();
    search = searchField.input.value.trim();
    offset = 0;
    load();
  });

  // Create user
  const createAlert = alertBox();
  const email = field('Email', { name: 'new-email', type: 'email', required: true, autocomplete: 'off' });
  const password = field('Initial password', { name: 'new-user-password', type: 'password', required: true, autocomplete: 'new-password', minlength: state.config.password_min_length || 8 });
  const roles = field('Roles', { name: 'new-roles', type: 'text', autocomplete: 'off', placeholder: 'admin, editor' }, 'Optional, comma-separated.');
  const createForm = h('form', { class: 'form form-grid' },
    email.wrap, password.wrap, roles.wrap,
    h('div', { class: 'actions' },
      h('button', { type: 'submit', class: 'btn btn-primary', text: 'Create user' })),
  );
  const createCard = h('div', { class: 'card', hidden: true },
    h('h2', { text: 'New user' }), createAlert.el, createForm);
  const newBtn = h('button', { type: 'button', class: 'btn btn-primary', 'aria-expanded': 'false', text: 'New user' });
  newBtn.addEventListener('click', () => {
    createCard.hidden = !createCard.hidden;
    newBtn.setAttribute('aria-expanded', String(!createCard.hidden));
    if (!createCard.hidden) email.input.focus();
  });
  createForm.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    createAlert.clear();
    await busy(createForm, async () => {
      try {
        const user = await api('POST', '/admin/users', {
          email: email.input.value.trim(),
          password: password.input.value,
          roles: parseList(roles.input.value),
        });
        createForm.reset();
        createCard.hidden = true;
        newBtn.setAttribute('aria-expanded', 'false');
        toast(`Created ${user && user.email ? user.email : 'user'}.`);
        load();
      } catch (err) {
        createAlert.show(errorMessage(err, 'admin'));
      }
    });
  });

  const editRoles = async (user) => {
    const input = h('input', { id: uid('roles'), type: 'text', value: (user.roles || []).join(', '), autocomplete: 'off' });
    const titleId = uid('dlg');
    const save = h('button', { type: 'submit', value: 'ok', class: 'btn btn-primary', text: 'Save roles' });
    const dialog = h('dialog', { class: 'dialog', 'aria-labelledby': titleId },
      h('form', { method: 'dialog' },
        h('h2', { id: titleId, text: `Roles of ${user.email}` }),
        h('div', { class: 'field' },
          h('label', { for: input.id, text: 'Roles' }),
          input,
          h('p', { class: 'hint', text: 'Comma-separated. Leave empty for none. Changes take effect at once: existing tokens of this user stop working.' })),
        h('div', { class: 'actions' },
          h('button', { type: 'submit', value: 'cancel', class: 'btn', text: 'Cancel', formnovalidate: true }),
          save),
      ),
    );
    document.body.appendChild(dialog);
    const result = await new Promise((resolve) => {
      dialog.addEventListener('close', () => resolve(dialog.returnValue));
      dialog.showModal();
      input.focus();
    });
    const value = input.value;
    dialog.remove();
    if (result !== 'ok') return;
    try {
      await api('PATCH', `/admin/users/${encodeURIComponent(user.id)}`, { roles: parseList(value) });
      toast(`Updated roles of ${user.email}.`);
    } catch (err) {
      alert.show(errorMessage(err, 'admin'));
    }
    load();
  };

  const setDisabled = async (user, disabled) => {
    if (disabled) {
      const ok = await confirmDialog({
        title: `Disable ${user.email}?`,
        message: 'Every session of this user ends now and they cannot sign in until enabled again.',
        confirm: 'Disable user',
        danger: true,
      });
      if (!ok) return;
    }
    try {
      await api('PATCH', `/admin/users/${encodeURIComponent(user.id)}`, { disabled });
      toast(`${disabled ? 'Disabled' : 'Enabled'} ${user.email}.`);
    } catch (err) {
      alert.show(errorMessage(err, 'admin'));
    }
    load();
  };

  const remove = async (user) => {
    const ok = await confirmDialog({
      title: `Delete ${user.email}?`,
      message: 'The account and all its sessions are removed. This cannot be undone.',
      confirm: 'Delete user',
      danger: true,
    });
    if (!ok) return;
    try {
      await api('DELETE', `/admin/users/${encodeURIComponent(user.id)}`);
      toast(`Deleted ${user.email}.`);
    } catch (err) {
      alert.show(errorMessage(err, 'admin'));
    }
    load();
  };

  const load = async () => {
    alert.clear();
    const q = new URLSearchParams({ limit: String(PAGE + 1), offset: String(offset) });
    if (search) q.set('search', search);
    let data;
    try {
      data = await api('GET', `/admin/users?${q}`);
    } catch (err) {
      denied(list, err, load);
      return;
    }
    const all = Array.isArray(data && data.users) ? data.users : [];
    const more = all.length > PAGE;
    const users = all.slice(0, PAGE);
    if (!users.length) {
      list.replaceChildren(h('p', { class: 'empty', text: search ? `No users match “${search}”.` : 'No users yet.' }));
      return;
    }
    const me = state.me && state.me.id;
    const rows = users.map((u) => [
      h('span', { class: 'cell-main' }, h('span', { text: u.email }), u.id === me ? h('span', { class: 'badge badge-current', text: 'you' }) : null),
      roleBadges(u.roles),
      u.disabled ? h('span', { class: 'badge badge-warn', text: 'Disabled' }) : h('span', { class: 'badge badge-ok', text: 'Active' }),
      timeEl(u.created_at),
      h('div', { class: 'row-actions' },
        h('button', { type: 'button', class: 'btn btn-small', text: 'Roles', 'aria-label': `Edit roles of ${u.email}`, onclick: () => editRoles(u) }),
        u.id === me ? null : h('button', {
          type: 'button', class: 'btn btn-small', text: u.disabled ? 'Enable' : 'Disable',
          'aria-label': `${u.disabled ? 'Enable' : 'Disable'} ${u.email}`, onclick: () => setDisabled(u, !u.disabled),
        }),
        u.id === me ? null : h('button', {
          type: 'button', class: 'btn btn-small btn-danger-outline', text: 'Delete',
          'aria-label': `Delete ${u.email}`, onclick: () => remove(u),
        }),
      ),
    ]);
    const pager = h('div', { class: 'pager' },
      h('button', { type: 'button', class: 'btn btn-small', text: 'Previous', disabled: offset === 0, onclick: () => { offset = Math.max(0, offset - PAGE); load(); } }),
      h('span', { class: 'muted', text: `${offset + 1}–${offset + users.length}` }),
      h('button', { type: 'button', class: 'btn btn-small', text: 'Next', disabled: !more, onclick: () => { offset += PAGE; load(); } }),
    );
    list.replaceChildren(table('Users', ['Email', 'Roles', 'Status', 'Created', 'Actions'], rows), pager);
  };
  load();

  return h('section', {},
    pageHead('Users', 'Accounts on this server.', newBtn),
    createCard,
    searchForm,
    alert.el,
    list,
  );
}

/** GET /admin/clients */
export function clientsPage() {
  const alert = alertBox();
  const list = h('div', { class: 'card card-flush' }, h('p', { class: 'loading pad', text: 'Loading clients…' }));
  const secretBox = h('div', { hidden: true });

  const name = field('Name', { name: 'client-name', type: 'text', required: true, autocomplete: 'off', placeholder: 'notes-api' });
  const roles = field('Roles', { name: 'client-roles', type: 'text', autocomplete: 'off' }, 'Optional, comma-separated. Put into tokens issued to this client.');
  const scope = field('Scope', { name: 'client-scope', type: 'text', autocomplete: 'off', placeholder: 'revocations:read' }, 'Optional, space-separated. revocations:read admits the client to the revocation feed.');
  const createAlert = alertBox();
  const form = h('form', { class: 'form form-grid' }, name.wrap, roles.wrap, scope.wrap,
    h('div', { class: 'actions' }, h('button', { type: 'submit', class: 'btn btn-primary', text: 'Create client' })));

  const copyField = (label, value) => {
    const input = h('input', { id: uid('copy'), type: 'text', readonly: true, value, class: 'mono', spellcheck: 'false' });
    const copy = h('button', { type: 'button', class: 'btn btn-small', text: 'Copy', 'aria-label': `Copy ${label}` });
    copy.addEventListener('click', async () => {
      try {
        await navigator.clipboard.writeText(value);
        copy.textContent = 'Copied';
      } catch {
        input.select();
        copy.textContent = 'Press Ctrl+C';
      }
    });
    return h('div', { class: 'field' }, h('label', { for: input.id, text: label }), h('div', { class: 'copy-row' }, input, copy));
  };

  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    createAlert.clear();
    await busy(form, async () => {
      try {
        const body = { name: name.input.value.trim() };
        const r = parseList(roles.input.value);
        if (r.length) body.roles = r;
        const s = scope.input.value.trim().split(/\s+/).filter(Boolean).join(' ');
        if (s) body.scope = s;
        const created = await api('POST', '/admin/clients', body);
        form.reset();
        const done = h('button', { type: 'button', class: 'btn btn-primary', text: 'I have stored the secret' });
        done.addEventListener('click', () => { secretBox.hidden = true; secretBox.replaceChildren(); });
        secretBox.replaceChildren(h('div', { class: 'card secret-card', role: 'region', 'aria-label': 'New client secret', 'data-testid': 'client-secret' },
          h('h2', { text: `Client “${created.name || body.name}” created` }),
          h('p', { class: 'alert alert-warn', text: 'Copy the client secret now. It is stored only as a hash and will not be shown again.' }),
          copyField('Client ID', created.client_id),
          copyField('Client secret', created.client_secret),
          h('div', { class: 'actions' }, done),
        ));
        secretBox.hidden = false;
        secretBox.querySelectorAll('input')[1]?.focus();
        load();
      } catch (err) {
        createAlert.show(errorMessage(err, 'admin'));
      }
    });
  });

  const remove = async (c) => {
    const ok = await confirmDialog({
      title: `Delete client “${c.name}”?`,
      message: 'Services using this client can no longer get tokens. Tokens already issued stay valid until they expire.',
      confirm: 'Delete client',
      danger: true,
    });
    if (!ok) return;
    try {
      await api('DELETE', `/admin/clients/${encodeURIComponent(c.client_id)}`);
      toast(`Deleted client ${c.name}.`);
    } catch (err) {
      alert.show(errorMessage(err, 'admin'));
    }
    load();
  };

  const load = async () => {
    let data;
    try {
      data = await api('GET', '/admin/clients');
    } catch (err) {
      denied(list, err, load);
      return;
    }
    const clients = Array.isArray(data && data.clients) ? data.clients : [];
    if (!clients.length) {
      list.replaceChildren(h('p', { class: 'empty', text: 'No OAuth clients yet.' }));
      return;
    }
    list.replaceChildren(table('OAuth clients', ['Name', 'Client ID', 'Roles', 'Scope', 'Created', ''], clients.map((c) => [
      h('span', { class: 'cell-main', text: c.name }),
      h('span', { class: 'mono', text: c.client_id }),
      roleBadges(c.roles),
      c.scope ? h('span', { class: 'mono', text: c.scope }) : h('span', { class: 'muted', text: '—' }),
      timeEl(c.created_at),
      h('button', { type: 'button', class: 'btn btn-small btn-danger-outline', text: 'Delete', 'aria-label': `Delete client ${c.name}`, onclick: () => remove(c) }),
    ])));
  };
  load();

  return h('section', {},
    pageHead('OAuth clients', 'Services that get tokens with the client_credentials grant.'),
    secretBox,
    h('div', { class: 'card' }, h('h2', { text: 'New client' }), createAlert.el, form),
    alert.el,
    list,
  );
}

const STATE_LABEL = { pending: 'Pending', active: 'Active', retired: 'Retired' };

/** GET /admin/keys */
export function keysPage() {
  const alert = alertBox();
  const list = h('div', { class: 'card card-flush' }, h('p', { class: 'loading pad', text: 'Loading keys…' }));
  const rotate = h('button', { type: 'button', class: 'btn btn-primary', text: 'Rotate now' });
  rotate.addEventListener('click', async () => {
    const ok = await confirmDialog({
      title: 'Rotate the signing key?',
      message: 'A new key starts signing tokens now. The current key is retired but stays published until its last token expires, so no request fails.',
      confirm: 'Rotate now',
    });
    if (!ok) return;
    rotate.disabled = true;
    try {
      const res = await api('POST', '/admin/keys/rotate');
      toast(`New signing key ${res && res.kid ? res.kid : ''} is active.`);
    } catch (err) {
      alert.show(errorMessage(err, 'admin'));
    }
    rotate.disabled = false;
    load();
  });

  const load = async () => {
    let data;
    try {
      data = await api('GET', '/admin/keys');
    } catch (err) {
      denied(list, err, load);
      return;
    }
    const order = { active: 0, pending: 1, retired: 2 };
    const keys = (Array.isArray(data && data.keys) ? data.keys : [])
      .slice().sort((a, b) => (order[a.state] ?? 3) - (order[b.state] ?? 3));
    if (!keys.length) {
      list.replaceChildren(h('p', { class: 'empty', text: 'No signing keys.' }));
      return;
    }
    list.replaceChildren(table('Signing keys', ['Key ID', 'Algorithm', 'State', 'Created', 'Active from', 'Retires', 'Removed from JWKS'], keys.map((k) => [
      h('span', { class: 'mono kid', title: k.kid, text: k.kid }),
      h('span', { class: 'mono', text: k.alg || '—' }),
      h('span', { class: `badge badge-${k.state === 'active' ? 'ok' : k.state === 'pending' ? 'info' : 'muted'}`, text: STATE_LABEL[k.state] || k.state }),
      timeEl(k.created_at),
      timeEl(k.activate_at),
      timeEl(k.retire_at),
      timeEl(k.remove_at),
    ])));
  };
  load();

  return h('section', {},
    pageHead('Signing keys', 'Keys that sign access tokens, as published in the JWKS.', rotate),
    alert.el,
    list,
  );
}

const KNOWN_EVENTS = [
  'login', 'login_failed', 'logout', 'logout_all', 'register', 'register_duplicate', 'setup', 'password_changed',
  'password_change_failed', 'session_revoked', 'refresh_reuse', 'token_revoked',
  'admin.user_created', 'admin.user_updated', 'admin.user_deleted',
  'admin.client_created', 'admin.client_deleted', 'admin.key_rotated',
];

/** GET /admin/audit */
export function auditPage() {
  const list = h('div', { class: 'card card-flush' }, h('p', { class: 'loading pad', text: 'Loading audit log…' }));
  const user = field('User', { name: 'user', type: 'text', autocomplete: 'off', placeholder: 'User ID' });
  const listId = uid('events');
  const event = field('Event', { name: 'event', type: 'text', autocomplete: 'off', list: listId, placeholder: 'e.g. login_failed' });
  const filters = h('form', { class: 'toolbar', role: 'search', 'aria-label': 'Filter audit log' },
    user.wrap, event.wrap,
    h('datalist', { id: listId }, KNOWN_EVENTS.map((e) => h('option', { value: e }))),
    h('button', { type: 'submit', class: 'btn', text: 'Filter' }),
    h('button', { type: 'reset', class: 'btn btn-ghost', text: 'Clear' }),
  );
  // Cursor paging: `before` is the id to continue from; the stack lets "Newer" go back.
  let before = null;
  const stack = [];

  filters.addEventListener('submit', (ev) => {
    ev.preventDefault();
    before = null;
    stack.length = 0;
    load();
  });
  filters.addEventListener('reset', () => {
    setTimeout(() => { before = null; stack.length = 0; load(); }, 0);
  });

  // Detail objects read as "key: value · key: value".
  const detailText = (d) => {
    if (d === null || d === undefined || d === '') return '';
    if (typeof d === 'string') return d;
    if (typeof d === 'object' && !Array.isArray(d)) {
      return Object.entries(d).map(([k, v]) => `${k.replaceAll('_', ' ')}: ${typeof v === 'string' ? v : JSON.stringify(v)}`).join(' · ');
    }
    try { return JSON.stringify(d); } catch { return String(d); }
  };

  const load = async () => {
    const q = new URLSearchParams({ limit: String(PAGE) });
    if (user.input.value.trim()) q.set('user', user.input.value.trim());
    if (event.input.value.trim()) q.set('event', event.input.value.trim());
    if (before !== null) q.set('before', String(before));
    let data;
    try {
      data = await api('GET', `/admin/audit?${q}`);
    } catch (err) {
      denied(list, err, load);
      return;
    }
    const events = Array.isArray(data && data.events) ? data.events : [];
    const nextBefore = data ? data.next_before : null;
    const pager = h('div', { class: 'pager' },
      h('button', {
        type: 'button', class: 'btn btn-small', text: 'Newer', disabled: stack.length === 0,
        onclick: () => { before = stack.pop() ?? null; load(); },
      }),
      h('button', {
        type: 'button', class: 'btn btn-small', text: 'Older', disabled: nextBefore === null || nextBefore === undefined,
        onclick: () => { stack.push(before); before = nextBefore; load(); },
      }),
    );
    if (!events.length) {
      list.replaceChildren(h('p', { class: 'empty', text: 'No events match.' }), pager);
      return;
    }
    const pill = (e) => {
      const bad = /fail|reuse|denied|disabled|deleted|revoked|duplicate/.test(e);
      return h('span', { class: `badge ${bad ? 'badge-warn' : 'badge-muted'}`, text: e });
    };
    // Ids are long; show a prefix, the whole id as a tooltip, and filter by it on click.
    const who = (id, filterable) => {
      if (!id) return h('span', { class: 'muted', text: '—' });
      const text = String(id);
      const short = text.length > 13 ? `${text.slice(0, 8)}…` : text;
      // Only user ids (UUIDs) filter by user; client ids and token hashes are just shown.
      if (!filterable || !/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(text)) {
        return h('span', { class: 'mono small', title: text, text: short });
      }
      return h('button', {
        type: 'button', class: 'link-button mono small', title: `${text} (show only this user)`,
        'aria-label': `Show only events of user ${text}`, text: short,
        onclick: () => { user.input.value = text; before = null; stack.length = 0; load(); },
      });
    };
    list.replaceChildren(table('Audit events', ['Time', 'Event', 'Actor', 'Subject', 'IP', 'Detail'], events.map((e) => [
      timeEl(e.at),
      pill(String(e.event || '')),
      who(e.actor, true),
      who(e.subject, false),
      h('span', { class: 'mono small', text: e.ip || '—' }),
      h('span', { class: 'detail small', text: detailText(e.detail) }),
    ])), pager);
  };
  load();

  return h('section', {},
    pageHead('Audit log', 'Security events, newest first.'),
    filters,
    list,
  );
}
