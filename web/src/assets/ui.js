// Small DOM and formatting helpers. Every string reaches the page through textContent or
// attributes set one by one, never innerHTML, so data from the server cannot become markup.

/**
 * Create an element. `attrs` keys: `class`, `text`, `on<event>` handlers, `dataset`,
 * booleans (set when true), anything else as an attribute.
 * Children: nodes, strings, arrays, null/false (skipped).
 */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === 'class') el.className = value;
    else if (key === 'text') el.textContent = value;
    else if (key === 'dataset') Object.assign(el.dataset, value);
    else if (key.startsWith('on') && typeof value === 'function') el.addEventListener(key.slice(2), value);
    else if (value === true) el.setAttribute(key, '');
    else el.setAttribute(key, String(value));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) append(el, child);
    else if (child instanceof Node) el.appendChild(child);
    else el.appendChild(document.createTextNode(String(child)));
  }
}

let idCounter = 0;
/** A unique id for label/field pairs. */
export function uid(prefix = 'f') {
  idCounter += 1;
  return `${prefix}-${idCounter}`;
}

/**
 * A labelled form field. Returns { wrap, input }.
 * @param {string} label visible label
 * @param {object} attrs input attributes (name, type, autocomplete, required, ...)
 * @param {string} [hint] help text under the field
 */
export function field(label, attrs = {}, hint) {
  const id = attrs.id || uid(attrs.name || 'f');
  const hintId = hint ? `${id}-hint` : null;
  const input = h(attrs.tag || 'input', { ...attrs, tag: null, id, 'aria-describedby': hintId });
  const wrap = h('div', { class: 'field' },
    h('label', { for: id, text: label }),
    input,
    hint ? h('p', { class: 'hint', id: hintId, text: hint }) : null,
  );
  return { wrap, input };
}

/** An alert box for form errors and notices; `show(msg)` / `clear()`. */
export function alertBox() {
  const el = h('div', { class: 'alert', role: 'alert', hidden: true });
  return {
    el,
    show(message, kind = 'error') {
      el.className = `alert alert-${kind}`;
      el.textContent = message;
      el.hidden = false;
    },
    clear() {
      el.hidden = true;
      el.textContent = '';
    },
  };
}

/** Disable a form's controls while `fn` runs; returns its result. */
export async function busy(form, fn) {
  const controls = [...form.querySelectorAll('button, input, select, textarea')];
  const was = controls.map((c) => c.disabled);
  controls.forEach((c) => { c.disabled = true; });
  form.setAttribute('aria-busy', 'true');
  try {
    return await fn();
  } finally {
    controls.forEach((c, i) => { c.disabled = was[i]; });
    form.removeAttribute('aria-busy');
  }
}

/** Show a short notice in the toast region (read by screen readers). */
export function toast(message, kind = 'ok') {
  const region = document.getElementById('toasts');
  if (!region) return;
  const el = h('div', { class: `toast toast-${kind}`, text: message });
  region.appendChild(el);
  setTimeout(() => el.remove(), 5000);
}

/**
 * Ask for confirmation in a modal <dialog> (keyboard: Esc cancels, focus is trapped by the
 * browser). Resolves true when confirmed.
 */
export function confirmDialog({ title, message, confirm = 'Confirm', danger = false }) {
  return new Promise((resolve) => {
    const ok = h('button', { type: 'submit', value: 'ok', class: danger ? 'btn btn-danger' : 'btn btn-primary', text: confirm });
    const cancel = h('button', { type: 'submit', value: 'cancel', class: 'btn', text: 'Cancel' });
    const titleId = uid('dlg');
    const dialog = h('dialog', { class: 'dialog', 'aria-labelledby': titleId },
      h('form', { method: 'dialog' },
        h('h2', { id: titleId, text: title }),
        h('p', { text: message }),
        h('div', { class: 'actions' }, cancel, ok),
      ),
    );
    dialog.addEventListener('close', () => {
      resolve(dialog.returnValue === 'ok');
      dialog.remove();
    });
    document.body.appendChild(dialog);
    dialog.showModal();
    cancel.focus();
  });
}

/** Parse a server timestamp: unix seconds, unix ms, or an RFC 3339 string. */
export function toDate(value) {
  if (value === null || value === undefined || value === '') return null;
  if (typeof value === 'number') return new Date(value < 1e12 ? value * 1000 : value);
  if (/^\d+$/.test(String(value))) return toDate(Number(value));
  const d = new Date(value);
  return Number.isNaN(d.getTime()) ? null : d;
}

const dateFmt = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'short' });
const timeFmt = new Intl.DateTimeFormat(undefined, { timeStyle: 'medium' });
const rel = new Intl.RelativeTimeFormat(undefined, { numeric: 'auto' });

/** "Nov 23, 2026, 2:05 PM" or an em dash. */
export function fmtDate(value) {
  const d = toDate(value);
  return d ? dateFmt.format(d) : '—';
}

/** "14:05:09". */
export function fmtTime(value) {
  const d = toDate(value);
  return d ? timeFmt.format(d) : '—';
}

/** "3 minutes ago", "in 8 minutes". */
export function fmtRelative(value) {
  const d = toDate(value);
  if (!d) return '—';
  const diff = (d.getTime() - Date.now()) / 1000;
  const abs = Math.abs(diff);
  if (abs < 45) return diff < 0 ? 'just now' : 'in a few seconds';
  if (abs < 3600) return rel.format(Math.round(diff / 60), 'minute');
  if (abs < 86400) return rel.format(Math.round(diff / 3600), 'hour');
  return rel.format(Math.round(diff / 86400), 'day');
}

/** A <time> element showing an absolute date with the relative one as a tooltip. */
export function timeEl(value, relative = false) {
  const d = toDate(value);
  if (!d) return h('span', { class: 'muted', text: '—' });
  return h('time', {
    datetime: d.toISOString(),
    title: relative ? dateFmt.format(d) : fmtRelative(d),
    text: relative ? fmtRelative(d) : dateFmt.format(d),
  });
}

/**
 * A simple, honest device name from a User-Agent string: "Chrome on Windows".
 * Order matters: Edge and Opera also say "Chrome", Chrome also says "Safari".
 */
export function parseUserAgent(ua) {
  if (!ua) return { browser: 'Unknown device', os: '', label: 'Unknown device' };
  const browsers = [
    [/Edg(?:e|A|iOS)?\/([\d]+)/, 'Edge'],
    [/OPR\/([\d]+)|Opera/, 'Opera'],
    [/SamsungBrowser\/([\d]+)/, 'Samsung Internet'],
    [/Firefox\/([\d]+)|FxiOS\/([\d]+)/, 'Firefox'],
    [/HeadlessChrome\/([\d]+)/, 'Headless Chrome'],
    [/Chrom(?:e|ium)\/([\d]+)|CriOS\/([\d]+)/, 'Chrome'],
    [/Version\/([\d]+).*Safari\//, 'Safari'],
    [/^curl\/([\d.]+)/, 'curl'],
    [/^python-requests|^Python-urllib|^aiohttp/, 'Python'],
    [/^Go-http-client/, 'Go'],
    [/^node|undici/, 'Node.js'],
    [/^okhttp/, 'OkHttp'],
    [/Mozilla\//, 'Browser'],
  ];
  const oses = [
    [/iPhone|iPad|iPod/, 'iOS'],
    [/Android/, 'Android'],
    [/CrOS/, 'ChromeOS'],
    [/Windows/, 'Windows'],
    [/Mac OS X|Macintosh/, 'macOS'],
    [/Linux/, 'Linux'],
  ];
  let browser = 'Unknown client';
  for (const [re, name] of browsers) {
    const m = ua.match(re);
    if (m) {
      const version = m.slice(1).find((x) => x);
      browser = version && !name.includes(' ') && name !== 'Browser' ? `${name} ${version.split('.')[0]}` : name;
      break;
    }
  }
  let os = '';
  for (const [re, name] of oses) {
    if (re.test(ua)) { os = name; break; }
  }
  const mobile = /Mobile|iPhone|Android/.test(ua);
  return { browser, os, mobile, label: os ? `${browser} on ${os}` : browser };
}

/** Human message for an ApiError, specialised for the common cases. */
export function errorMessage(err, context = '') {
  if (!err) return 'Something went wrong.';
  if (err.status === 429) {
    const wait = err.retryAfter;
    return wait
      ? `Too many attempts. Please wait ${formatWait(wait)} before trying again.`
      : 'Too many attempts. Please wait a moment before trying again.';
  }
  if (err.status === 0) return err.description || 'Cannot reach the server.';
  if (err.code === 'session_expired') return 'Your session has ended. Please sign in again.';
  if (context === 'login' && err.status === 401) return 'Wrong email or password.';
  if (err.status === 403 && (err.code === 'insufficient_scope' || err.code === 'forbidden' || err.code === 'access_denied') && context === 'admin') {
    return 'You need the admin role to use this page.';
  }
  if (err.status === 503) return 'The server is temporarily unavailable. Please try again shortly.';
  if (err.status >= 500) return 'The server had a problem handling this request. Please try again.';
  return err.description || err.message || 'Something went wrong.';
}

/** "45 seconds", "2 minutes", "1 minute 30 seconds". */
export function formatWait(seconds) {
  const s = Math.max(1, Math.ceil(seconds));
  if (s < 60) return `${s} second${s === 1 ? '' : 's'}`;
  const m = Math.floor(s / 60);
  const rest = s % 60;
  const mins = `${m} minute${m === 1 ? '' : 's'}`;
  return rest ? `${mins} ${rest} second${rest === 1 ? '' : 's'}` : mins;
}

/** A role badge list. */
export function roleBadges(roles) {
  const list = Array.isArray(roles) ? roles : [];
  if (!list.length) return h('span', { class: 'muted', text: 'no roles' });
  return h('span', { class: 'badges' }, list.map((r) => h('span', { class: `badge${r === 'admin' ? ' badge-admin' : ''}`, text: r })));
}
