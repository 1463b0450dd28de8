// End-to-end tests of the Tessera browser app: headless Debian Chromium, driven by
// playwright-core, against a real `tessera serve` started by e2e/run.sh.
//
// The tests run in order and share one server: the first one performs the first-run setup.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const BASE = process.env.TESSERA_URL;
const SETUP_URL = process.env.TESSERA_SETUP_URL;
if (!BASE || !SETUP_URL) throw new Error('run through e2e/run.sh (TESSERA_URL and TESSERA_SETUP_URL)');

const HERE = dirname(fileURLToPath(import.meta.url));
const ARTIFACTS = join(HERE, 'artifacts');
const README_IMG = join(HERE, '..', '..', 'docs', 'img', 'sessions.png');
mkdirSync(ARTIFACTS, { recursive: true });

const ADMIN = 'admin@example.com';
let adminPassword = 'correct horse battery';
const DANA = 'dana@example.com';
let danaPassword = 'dana-first-password';
const ERIN = 'erin@example.com';
const ERIN_PASSWORD = 'erin-password-123';
const FRANK = 'frank@example.com';
const FRANK_PASSWORD = 'frank-password-456';

const UA_LAPTOP = 'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36';
const UA_PHONE = 'Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1';
const UA_MAC = 'Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Safari/605.1.15';

let browser;
/** Every CSP violation, page error or failed asset seen by any page. */
const problems = [];
/** Every access token the server handed to a page (to prove none reaches storage). */
const issuedTokens = new Set();

before(async () => {
  browser = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    headless: true,
    args: [
      '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
    ],
  });
});

after(async () => {
  if (browser) await browser.close();
});

/** A separate browser profile: its own cookies, like a separate device. */
async function device({ userAgent = UA_LAPTOP, width = 1280, height = 860, mobile = false } = {}) {
  const context = await browser.newContext({
    userAgent,
    viewport: { width, height },
    deviceScaleFactor: mobile ? 2 : 1,
    isMobile: mobile,
    hasTouch: mobile,
    locale: 'en-US',
    timezoneId: 'UTC',
  });
  const page = await context.newPage();
  page.setDefaultTimeout(10_000);
  page.on('console', (msg) => {
    if (msg.type() === 'error' && /Content Security Policy|Refused to/i.test(msg.text())) {
      problems.push(`console: ${msg.text()}`);
    }
  });
  page.on('pageerror', (err) => problems.push(`pageerror: ${err.message}`));
  page.on('response', async (res) => {
    const url = new URL(res.url());
    if (url.pathname.startsWith('/assets/') && res.status() >= 400) problems.push(`asset ${res.status()}: ${url.pathname}`);
    if (['/auth/login', '/auth/refresh', '/auth/password'].includes(url.pathname) && res.ok()) {
      try {
        const body = await res.json();
        if (body && body.access_token) issuedTokens.add(body.access_token);
      } catch { /* not JSON */ }
    }
  });
  return { context, page };
}

async function shot(page, name) {
  await page.waitForLoadState('networkidle').catch(() => {});
  // Let fonts and the last render settle.
  await page.waitForTimeout(150);
  // Transient notices would cover the page.
  await page.evaluate(() => document.getElementById('toasts')?.replaceChildren());
  const path = join(ARTIFACTS, `${name}.png`);
  await page.screenshot({ path, fullPage: true });
  return path;
}

async function heading(page, text) {
  await page.locator('h1', { hasText: text }).first().waitFor();
}

async function signIn(page, email, password) {
  await page.goto(`${BASE}/login`);
  await heading(page, 'Sign in');
  await page.getByLabel('Email', { exact: true }).fill(email);
  await page.getByLabel('Password', { exact: true }).fill(password);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.waitForURL(`${BASE}/profile`);
  await page.getByTestId('profile-email').filter({ hasText: email }).waitFor();
}

async function signOut(page) {
  await page.getByTestId('sign-out').click();
  await page.waitForURL(/\/login/);
  await heading(page, 'Sign in');
}

/** Click a nav link (an in-app action that calls the API) and return the resulting path. */
async function goVia(page, linkName) {
  await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: linkName, exact: true }).click();
}

/** Every input on the page has a label, and nothing overflows a phone-width viewport. */
async function checkAccessible(page, label) {
  const unlabelled = await page.evaluate(() => [...document.querySelectorAll('input, select, textarea')]
    .filter((el) => el.type !== 'hidden' && el.labels.length === 0 && !el.getAttribute('aria-label'))
    .map((el) => el.name || el.id || el.outerHTML.slice(0, 60)));
  assert.deepEqual(unlabelled, [], `${label}: unlabelled fields`);
}

async function checkNoHorizontalScroll(page, label) {
  const { scroll, width } = await page.evaluate(() => ({
    scroll: document.documentElement.scrollWidth,
    width: window.innerWidth,
  }));
  assert.ok(scroll <= width + 1, `${label}: page is ${scroll}px wide in a ${width}px viewport`);
}

function assertNoProblems() {
  assert.deepEqual(problems, [], 'CSP violations, page errors or missing assets');
}

describe('Tessera browser app', () => {
  test('first-run setup, sign in, profile, sign out', async () => {
    const { context, page } = await device();
    // Security headers on the page itself.
    const res = await page.goto(SETUP_URL);
    const h = res.headers();
    assert.match(h['content-security-policy'], /default-src 'self'; script-src 'self'; style-src 'self'/);
    assert.match(h['content-security-policy'], /frame-ancestors 'none'/);
    assert.equal(h['x-content-type-options'], 'nosniff');
    assert.equal(h['referrer-policy'], 'no-referrer');
    assert.equal(h['x-frame-options'], 'DENY');
    assert.equal(h['cross-origin-opener-policy'], 'same-origin');
    assert.equal(h['cache-control'], 'no-store');

    await heading(page, 'Create the first administrator');
    // The one-time token is taken out of the address bar and history.
    assert.equal(page.url(), `${BASE}/setup`);
    await checkAccessible(page, 'setup');
    await page.getByLabel('Administrator email').fill(ADMIN);
    await page.getByLabel('Password', { exact: true }).fill(adminPassword);
    await page.getByLabel('Confirm password').fill(adminPassword);
    await shot(page, '01-setup');
    await page.getByRole('button', { name: 'Create administrator' }).click();

    // Setup signs the new admin in.
    await page.waitForURL(`${BASE}/profile`);
    await page.getByTestId('profile-email').filter({ hasText: ADMIN }).waitFor();
    await page.locator('.details .badge-admin', { hasText: 'admin' }).waitFor();
    await page.getByTestId('token-expiry').filter({ hasText: /renewed automatically/ }).waitFor();
    await signOut(page);

    // The setup link is single-use.
    await page.goto(SETUP_URL);
    await heading(page, 'Setup is complete');

    // Wrong password: a clear message, still on sign-in.
    await page.goto(`${BASE}/login`);
    await page.getByLabel('Email').fill(ADMIN);
    await page.getByLabel('Password', { exact: true }).fill('not the password');
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('alert').filter({ hasText: 'Wrong email or password.' }).waitFor();
    await checkAccessible(page, 'login');
    await shot(page, '02-login-wrong-password');

    await signIn(page, ADMIN, adminPassword);
    await shot(page, '03-profile');
    await signOut(page);
    await shot(page, '04-signed-out');
    assertNoProblems();
    await context.close();
  });

  test('a reload keeps the user signed in; the access token is nowhere in storage', async () => {
    const { context, page } = await device();
    await signIn(page, ADMIN, adminPassword);
    await page.reload();
    await page.getByTestId('profile-email').filter({ hasText: ADMIN }).waitFor();
    assert.equal(page.url(), `${BASE}/profile`);

    // A fresh load of another page restores the session from the cookie too.
    await page.goto(`${BASE}/sessions`);
    await heading(page, 'Sessions');
    await page.locator('.session-current').waitFor();

    assert.ok(issuedTokens.size >= 2, 'login and refresh each returned an access token');
    const storage = await page.evaluate(() => ({
      local: JSON.stringify(Object.entries(localStorage)),
      session: JSON.stringify(Object.entries(sessionStorage)),
      cookie: document.cookie,
    }));
    for (const token of issuedTokens) {
      for (const [where, text] of Object.entries(storage)) {
        assert.ok(!text.includes(token), `access token found in ${where}`);
      }
    }
    assert.ok(!/eyJ[\w-]+\.[\w-]+\./.test(Object.values(storage).join(' ')), 'no JWT in any storage');
    // The refresh cookie exists but scripts cannot read it.
    const cookies = await context.cookies();
    const refresh = cookies.find((c) => c.name === 'tessera_refresh');
    assert.ok(refresh, 'refresh cookie set');
    assert.equal(refresh.httpOnly, true);
    assert.equal(refresh.sameSite, 'Strict');
    assert.equal(refresh.path, '/auth');
    assert.ok(!storage.cookie.includes('tessera_refresh'));
    assertNoProblems();
    await context.close();
  });

  test('admin pages: create users and a client, rotate keys, read the audit log', async () => {
    const { context, page } = await device();
    await signIn(page, ADMIN, adminPassword);
    await goVia(page, 'Users');
    await heading(page, 'Users');
    await page.locator('table').waitFor();

    for (const [email, password, roles] of [[DANA, danaPassword, ''], [ERIN, ERIN_PASSWORD, 'admin']]) {
      await page.getByRole('button', { name: 'New user' }).click();
      await page.getByLabel('Email', { exact: true }).fill(email);
      await page.getByLabel('Initial password').fill(password);
      await page.getByLabel('Roles', { exact: true }).fill(roles);
      await page.getByRole('button', { name: 'Create user' }).click();
      await page.locator('td', { hasText: email }).waitFor();
    }
    await checkAccessible(page, 'users');
    // Search narrows the list.
    await page.getByLabel('Search users').fill('dana');
    await page.getByRole('button', { name: 'Search' }).click();
    await page.locator('td', { hasText: ERIN }).waitFor({ state: 'detached' });
    await page.locator('td', { hasText: DANA }).waitFor();
    await page.getByLabel('Search users').fill('');
    await page.getByRole('button', { name: 'Search' }).click();
    await page.locator('td', { hasText: ERIN }).waitFor();
    await shot(page, '05-admin-users');

    await goVia(page, 'Clients');
    await heading(page, 'OAuth clients');
    await page.getByLabel('Name').fill('notes-api');
    await page.getByLabel('Scope').fill('revocations:read');
    await page.getByRole('button', { name: 'Create client' }).click();
    const secretCard = page.getByTestId('client-secret');
    await secretCard.waitFor();
    const secret = await secretCard.getByLabel('Client secret', { exact: true }).inputValue();
    assert.ok(secret.length >= 16, 'client secret shown');
    await checkAccessible(page, 'clients');
    await page.locator('td', { hasText: 'notes-api' }).first().waitFor();
    await shot(page, '06-admin-clients-secret');
    await page.getByRole('button', { name: 'I have stored the secret' }).click();
    // Shown once: the secret is not on the page any more, and not in the list.
    assert.ok(!(await page.content()).includes(secret));
    // Delete a second, throwaway client.
    await page.getByLabel('Name').fill('throwaway');
    await page.getByRole('button', { name: 'Create client' }).click();
    await page.getByRole('button', { name: 'I have stored the secret' }).click();
    await page.getByRole('button', { name: 'Delete client throwaway' }).click();
    await page.getByRole('dialog').getByRole('button', { name: 'Delete client' }).click();
    await page.locator('td', { hasText: 'throwaway' }).waitFor({ state: 'detached' });

    await goVia(page, 'Keys');
    await heading(page, 'Signing keys');
    await page.locator('table .badge', { hasText: 'Active' }).first().waitFor();
    const before = await page.locator('tbody tr').count();
    await page.getByRole('button', { name: 'Rotate now' }).click();
    await page.getByRole('dialog').getByRole('button', { name: 'Rotate now' }).click();
    await page.waitForFunction((n) => document.querySelectorAll('tbody tr').length > n, before);
    await shot(page, '07-admin-keys');

    // The admin's own session still works after the rotation (new key signs the refresh).
    await goVia(page, 'Audit');
    await heading(page, 'Audit log');
    await page.locator('tbody tr').first().waitFor();
    await page.getByLabel('Event', { exact: true }).fill('admin.user_created');
    await page.getByRole('button', { name: 'Filter' }).click();
    // Exactly the two users created above.
    await page.waitForFunction(() => {
      const kinds = [...document.querySelectorAll('tbody tr td:nth-child(2)')].map((td) => td.textContent);
      return kinds.length === 2 && kinds.every((k) => k === 'admin.user_created');
    });
    // Clicking an actor filters by that user.
    await page.locator('tbody tr').first().getByRole('button', { name: /Show only events of user/ }).first().click();
    await page.waitForFunction(() => document.querySelector('input[name=user]').value.length > 0);
    await page.locator('tbody tr').first().waitFor();
    await checkAccessible(page, 'audit');
    await page.getByLabel('User', { exact: true }).fill('');
    await page.getByLabel('Event', { exact: true }).fill('');
    await page.getByRole('button', { name: 'Filter' }).click();
    await page.locator('tbody tr').first().waitFor();
    await shot(page, '08-admin-audit');
    assertNoProblems();
    await context.close();
  });

  test('two devices: ending device B from device A sends B to sign-in', async () => {
    const a = await device({ userAgent: UA_LAPTOP });
    const b = await device({ userAgent: UA_PHONE, width: 390, height: 844, mobile: true });
    await signIn(a.page, DANA, danaPassword);
    await signIn(b.page, DANA, danaPassword);

    await goVia(a.page, 'Sessions');
    await heading(a.page, 'Sessions');
    await a.page.waitForFunction(() => document.querySelectorAll('.session').length === 2);
    // The current session is marked and listed first; the other is the phone.
    const current = a.page.locator('.session[data-current="true"]');
    assert.equal(await current.count(), 1);
    assert.match(await current.locator('.session-device').textContent(), /Chrome 131 on Linux/);
    await current.locator('.badge-current', { hasText: 'This device' }).waitFor();
    const other = a.page.locator('.session[data-current="false"]');
    assert.match(await other.locator('.session-device').textContent(), /Safari 17 on iOS/);
    await checkAccessible(a.page, 'sessions');
    await shot(a.page, '09-sessions');
    await shot(b.page, '09-profile-phone');
    await checkNoHorizontalScroll(b.page, 'profile at phone width');

    await other.getByRole('button', { name: /End session/ }).click();
    await a.page.getByRole('dialog').getByRole('button', { name: 'End session' }).click();
    await a.page.waitForFunction(() => document.querySelectorAll('.session').length === 1);

    // Device B's next action lands on sign-in with a clear message.
    await goVia(b.page, 'Sessions');
    await b.page.waitForURL(/\/login/);
    await b.page.getByRole('alert').filter({ hasText: 'Your session has ended' }).waitFor();
    await shot(b.page, '10-session-ended-phone');
    await checkNoHorizontalScroll(b.page, 'login at phone width');

    // Device A is unaffected.
    await goVia(a.page, 'Profile');
    await a.page.getByTestId('profile-email').filter({ hasText: DANA }).waitFor();
    assertNoProblems();
    await a.context.close();
    await b.context.close();
  });

  test('changing the password on A signs B out and keeps A in', async () => {
    const a = await device({ userAgent: UA_LAPTOP });
    const b = await device({ userAgent: UA_MAC });
    await signIn(a.page, DANA, danaPassword);
    await signIn(b.page, DANA, danaPassword);

    await goVia(a.page, 'Password');
    await heading(a.page, 'Change password');
    await checkAccessible(a.page, 'password');
    // Wrong current password: clear message, nothing changes, still signed in.
    await a.page.getByLabel('Current password').fill('wrong-password');
    await a.page.getByLabel('New password', { exact: true }).fill('dana-second-password');
    await a.page.getByLabel('Confirm new password').fill('dana-second-password');
    await a.page.getByRole('button', { name: 'Change password' }).click();
    await a.page.getByRole('alert').filter({ hasText: 'The current password is wrong.' }).waitFor();
    assert.equal(a.page.url(), `${BASE}/password`);

    const next = 'dana-second-password';
    await a.page.getByLabel('Current password').fill(danaPassword);
    await a.page.getByLabel('New password', { exact: true }).fill(next);
    await a.page.getByLabel('Confirm new password').fill(next);
    await a.page.getByRole('button', { name: 'Change password' }).click();
    await a.page.getByRole('alert').filter({ hasText: 'Password changed' }).waitFor();
    danaPassword = next;
    await shot(a.page, '11-password-changed');

    // B is signed out at its next action.
    await goVia(b.page, 'Sessions');
    await b.page.waitForURL(/\/login/);
    await b.page.getByRole('alert').filter({ hasText: 'Your session has ended' }).waitFor();

    // A stays in, and is the only session left; a reload still works (new cookie).
    await goVia(a.page, 'Sessions');
    await heading(a.page, 'Sessions');
    await a.page.waitForFunction(() => document.querySelectorAll('.session').length === 1);
    await a.page.reload();
    await a.page.locator('.session-current').waitFor();

    // The old password no longer works; the new one does.
    await b.page.getByLabel('Email').fill(DANA);
    await b.page.getByLabel('Password', { exact: true }).fill('dana-first-password');
    await b.page.getByRole('button', { name: 'Sign in' }).click();
    await b.page.getByRole('alert').filter({ hasText: 'Wrong email or password.' }).waitFor();
    await signIn(b.page, DANA, danaPassword);
    assertNoProblems();
    await a.context.close();
    await b.context.close();
  });

  test("removing a user's admin role stops their admin page at once", async () => {
    const admin = await device();
    const erin = await device({ userAgent: UA_MAC });
    await signIn(erin.page, ERIN, ERIN_PASSWORD);
    await goVia(erin.page, 'Users');
    await heading(erin.page, 'Users');
    await erin.page.locator('td', { hasText: ADMIN }).waitFor();

    await signIn(admin.page, ADMIN, adminPassword);
    await goVia(admin.page, 'Users');
    await admin.page.getByRole('button', { name: `Edit roles of ${ERIN}` }).click();
    const dialog = admin.page.getByRole('dialog');
    await dialog.getByLabel('Roles').fill('');
    await dialog.getByRole('button', { name: 'Save roles' }).click();
    await admin.page.locator('tr', { hasText: ERIN }).locator('.muted', { hasText: 'no roles' }).waitFor();

    // Erin's very next admin action is refused, though her access token had not expired.
    await erin.page.getByRole('button', { name: 'Search' }).click();
    await erin.page.getByTestId('admin-denied').waitFor();
    await shot(erin.page, '12-admin-denied');
    // The admin links are gone from her navigation; she is still signed in.
    await erin.page.getByRole('link', { name: 'Users', exact: true }).waitFor({ state: 'detached' });
    await goVia(erin.page, 'Profile');
    await erin.page.getByTestId('profile-email').filter({ hasText: ERIN }).waitFor();
    // A direct load of the admin page refuses too.
    await erin.page.goto(`${BASE}/admin/users`);
    await erin.page.getByTestId('admin-denied').waitFor();
    assertNoProblems();
    await admin.context.close();
    await erin.context.close();
  });

  test('silent refresh before expiry keeps the page working', async () => {
    const { context, page } = await device();
    await signIn(page, DANA, danaPassword);
    const refreshed = page.waitForResponse((r) => new URL(r.url()).pathname === '/auth/refresh' && r.ok(), { timeout: 60_000 });
    // The server hands out 20 s tokens in this run: the timer fires at ~16 s.
    const res = await refreshed;
    assert.equal(res.request().headers()['x-tessera-csrf'], '1');
    await goVia(page, 'Sessions');
    await page.locator('.session-current').waitFor();
    assert.equal(page.url(), `${BASE}/sessions`);
    assertNoProblems();
    await context.close();
  });

  test('sign out everywhere ends every session and returns to sign-in', async () => {
    const a = await device();
    const b = await device({ userAgent: UA_PHONE });
    await signIn(a.page, DANA, danaPassword);
    await signIn(b.page, DANA, danaPassword);
    await goVia(a.page, 'Sessions');
    await a.page.getByRole('button', { name: 'Sign out everywhere' }).click();
    await a.page.getByRole('dialog').getByRole('button', { name: 'Sign out everywhere' }).click();
    await a.page.waitForURL(/\/login/);
    await a.page.getByRole('alert').filter({ hasText: 'signed out on every device' }).waitFor();
    // The cookie is gone: a reload stays signed out.
    await a.page.reload();
    await heading(a.page, 'Sign in');
    await goVia(b.page, 'Sessions');
    await b.page.waitForURL(/\/login/);
    assertNoProblems();
    await a.context.close();
    await b.context.close();
  });

  test('register (registration is open), then two tabs refresh at once and stay signed in', async () => {
    const { context, page } = await device();
    await page.goto(`${BASE}/login`);
    await page.getByRole('link', { name: 'Create an account' }).click();
    await heading(page, 'Create your account');
    await page.getByLabel('Email').fill(FRANK);
    await page.getByLabel('Password', { exact: true }).fill(FRANK_PASSWORD);
    await page.getByLabel('Confirm password').fill('not the same');
    await page.getByRole('button', { name: 'Create account' }).click();
    await page.getByRole('alert').filter({ hasText: 'do not match' }).waitFor();
    await page.getByLabel('Confirm password').fill(FRANK_PASSWORD);
    await page.getByRole('button', { name: 'Create account' }).click();
    await page.waitForURL(`${BASE}/profile`);
    await page.getByTestId('profile-email').filter({ hasText: FRANK }).waitFor();

    // A second tab of the same browser shares the refresh cookie.
    const tab2 = await context.newPage();
    await tab2.goto(`${BASE}/sessions`);
    await tab2.locator('.session-current').waitFor();
    // Both tabs restore from the same cookie at the same moment: the refresh is serialised
    // across tabs (Web Locks) and the server's grace window covers any overlap.
    await Promise.all([page.reload(), tab2.reload()]);
    await page.getByTestId('profile-email').filter({ hasText: FRANK }).waitFor();
    await tab2.locator('.session-current').waitFor();
    // And their silent refresh timers (20 s tokens, restored at the same instant) fire together.
    await Promise.all([page, tab2].map((p) => p.waitForResponse(
      (r) => new URL(r.url()).pathname === '/auth/refresh', { timeout: 60_000 })));
    for (const p of [page, tab2]) {
      await p.reload();
      await p.locator('h1').first().waitFor();
      assert.ok(!p.url().includes('/login'), `tab still signed in (${p.url()})`);
    }
    // One device, one session.
    await tab2.getByRole('button', { name: 'Refresh' }).click();
    await tab2.waitForFunction(() => document.querySelectorAll('.session').length === 1);

    // Signing out in one tab signs the other out too (BroadcastChannel, no token in it).
    await signOut(page);
    await tab2.waitForURL(/\/login/);
    await heading(tab2, 'Sign in');
    assertNoProblems();
    await context.close();
  });

  test('screenshots: every page, desktop and phone width', async () => {
    // Start from one session, then add two more devices so the page shows a realistic list.
    const { context, page } = await device();
    await signIn(page, ADMIN, adminPassword);
    await goVia(page, 'Sessions');
    await page.locator('.session-current').waitFor();
    const endOthers = page.getByRole('button', { name: 'Sign out other sessions' });
    if (await endOthers.isEnabled()) {
      await endOthers.click();
      await page.getByRole('dialog').getByRole('button', { name: 'Sign out others' }).click();
      await page.waitForFunction(() => document.querySelectorAll('.session').length === 1);
    }
    const other = await device({ userAgent: UA_PHONE });
    await signIn(other.page, ADMIN, adminPassword);
    const mac = await device({ userAgent: UA_MAC });
    await signIn(mac.page, ADMIN, adminPassword);
    await page.getByRole('button', { name: 'Refresh' }).click();
    await page.waitForFunction(() => document.querySelectorAll('.session').length === 3);
    const sessions = await shot(page, '20-sessions');
    // The README's picture is refreshed only on request, so a test run leaves the tree clean.
    if (process.env.UPDATE_README_IMG === '1') {
      mkdirSync(dirname(README_IMG), { recursive: true });
      copyFileSync(sessions, README_IMG);
    }
    for (const [link, name, title] of [
      ['Profile', '21-profile', 'Your profile'],
      ['Password', '22-password', 'Change password'],
      ['Users', '23-admin-users', 'Users'],
      ['Clients', '24-admin-clients', 'OAuth clients'],
      ['Keys', '25-admin-keys', 'Signing keys'],
      ['Audit', '26-admin-audit', 'Audit log'],
    ]) {
      await goVia(page, link);
      await heading(page, title);
      await page.waitForLoadState('networkidle');
      await shot(page, name);
    }

    const phone = await device({ userAgent: UA_PHONE, width: 375, height: 812, mobile: true });
    await signIn(phone.page, ADMIN, adminPassword);
    for (const path of ['/profile', '/sessions', '/password', '/admin/users', '/admin/clients', '/admin/keys', '/admin/audit']) {
      await phone.page.goto(`${BASE}${path}`);
      await phone.page.locator('h1').first().waitFor();
      await phone.page.waitForLoadState('networkidle');
      await checkNoHorizontalScroll(phone.page, `${path} at 375px`);
      await checkAccessible(phone.page, path);
      await shot(phone.page, `30-phone${path.replaceAll('/', '-')}`);
    }
    const anon = await device({ width: 375, height: 740, mobile: true });
    await anon.page.goto(`${BASE}/register`);
    await heading(anon.page, 'Create your account');
    await checkAccessible(anon.page, 'register');
    await checkNoHorizontalScroll(anon.page, 'register at 375px');
    await shot(anon.page, '31-phone-register');
    assertNoProblems();
    for (const c of [other, mac, phone, anon]) await c.context.close();
    await context.close();
  });

  test('keyboard: sign in with the keyboard alone; focus is visible', async () => {
    const { context, page } = await device();
    await page.goto(`${BASE}/login`);
    await heading(page, 'Sign in');
    // The email field has focus on load; Tab moves through the form.
    assert.equal(await page.evaluate(() => document.activeElement && document.activeElement.type), 'email');
    await page.keyboard.type(DANA);
    await page.keyboard.press('Tab');
    const outline = await page.evaluate(() => getComputedStyle(document.activeElement).outlineStyle);
    assert.notEqual(outline, 'none', 'focused field shows an outline');
    await page.keyboard.type(danaPassword);
    await page.keyboard.press('Enter');
    await page.waitForURL(`${BASE}/profile`);
    await shot(page, '40-keyboard-focus');
    assertNoProblems();
    await context.close();
  });

  test('throttling shows how long to wait', async () => {
    const { context, page } = await device();
    await page.goto(`${BASE}/login`);
    const alert = page.getByRole('alert');
    let message = '';
    for (let i = 0; i < 12; i += 1) {
      await page.getByLabel('Email').fill('nobody@example.com');
      await page.getByLabel('Password', { exact: true }).fill(`wrong-${i}`);
      const submit = page.locator('form button[type=submit]');
      await submit.waitFor();
      if (await submit.isDisabled()) break;
      await submit.click();
      await page.waitForFunction(() => {
        const el = document.querySelector('[role=alert]:not([hidden])');
        return el && el.textContent.length > 0 && !document.querySelector('form[aria-busy]');
      });
      message = await alert.first().textContent();
      if (/Too many attempts/.test(message)) break;
    }
    assert.match(message, /Too many attempts\. Please wait \d+ (second|minute)/);
    await shot(page, '41-throttled');
    await context.close();
  });
});
