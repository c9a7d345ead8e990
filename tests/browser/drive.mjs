// Drives Debian's chromium through a sign-in at the edge, for tests/browser_login.rs and the
// demo's self-check (scripts/demo.sh).
//
// Usage: node drive.mjs <gateway origin> <provider origin> <user-data-dir> [everything|refresh|demo]
//        node drive.mjs <gateway origin> <provider origin> <user-data-dir> cognito-signout <Cognito origin>
// (everything, the default: the whole sign-in test of tests/browser_login.rs)
// Prints one JSON object of observations on stdout; the caller asserts on it. Every wait
// is for an event (a URL, a load), bounded by TIMEOUT.
import { chromium } from 'playwright-core';

const [gateway, provider, userDataDir, mode, cognito] = process.argv.slice(2);
const TIMEOUT = 30_000;
const seen = {};

const context = await chromium.launchPersistentContext(userDataDir, {
  executablePath: '/usr/bin/chromium',
  headless: true,
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  timeout: TIMEOUT,
});
context.setDefaultTimeout(TIMEOUT);
const page = context.pages()[0] ?? await context.newPage();
const requests = [];
page.on('request', (r) => requests.push(r.url()));
const toProvider = () => requests.filter((u) => u.startsWith(`${provider}/oauth2/authorize`)).length;
const sessionCookie = async () => (await context.cookies(gateway)).find((c) => c.name === '__Host-cea_session_0');
const header = (echo, name) => (echo.headers.find((h) => h[0] === name) || [])[1];
const echoed = async () => JSON.parse(await page.locator('body').innerText());

try {
  if (mode === 'refresh') {
    await refresh();
  } else if (mode === 'demo') {
    await demo();
  } else if (mode === 'cognito-signout') {
    await cognitoSignOut();
  } else {
    await everything();
  }
} catch (e) {
  seen.error = `${e}`;
  seen.error_url = page.url();
  seen.error_page = (await page.content().catch(() => '')).slice(0, 2000);
} finally {
  await context.close();
}
console.log(JSON.stringify(seen));

async function signIn(url) {
  await page.goto(url);
  await page.waitForSelector('input[name=login]');
  await page.fill('input[name=login]', 'alice');
  await page.fill('input[name=password]', 'any');
  await Promise.all([page.waitForURL(url), page.click('button[type=submit]')]);
}

// Signed in, alice's session passes the live routes (checked with Cognito); an administrator
// signs her out in Cognito (AdminUserGlobalSignOut); within cache_seconds her next navigation
// to a live route is sent through sign-in again, and comes back with a new, live session.
async function cognitoSignOut() {
  await signIn(`${gateway}/live/before`);
  seen.before_identity = header(await echoed(), 'x-auth-email');
  let trips = toProvider();
  await page.goto(`${gateway}/live/again`);
  seen.again_identity = header(await echoed(), 'x-auth-email');
  seen.again_went_to_provider = toProvider() > trips;
  const r = await fetch(cognito, {
    method: 'POST',
    headers: { 'content-type': 'application/x-amz-json-1.1',
      'x-amz-target': 'AWSCognitoIdentityProviderService.AdminUserGlobalSignOut' },
    body: JSON.stringify({ UserPoolId: 'us-east-1_Abc123', Username: 'alice' }),
  });
  seen.sign_out_status = r.status;
  // The kept answer lives a second: navigate until the filter hears of the sign-out.
  trips = toProvider();
  const deadline = Date.now() + TIMEOUT;
  while (toProvider() === trips && Date.now() < deadline) {
    await page.goto(`${gateway}/live/after`);
    await page.waitForLoadState('load');
  }
  seen.after_went_to_provider = toProvider() > trips;
  await page.waitForURL(`${gateway}/live/after`);
  seen.after_identity = header(await echoed(), 'x-auth-email');
}

// The demo's self-check: what `make run` tells a user to do. Sign in from the echo page,
// then log out.
async function demo() {
  await signIn(`${gateway}/`);
  seen.after_login_url = page.url();
  seen.after_login = await echoed();
  await page.goto(`${gateway}/logout`);
  await page.waitForURL((u) => u.href.startsWith(`${provider}/logout`));
  seen.logout_url = page.url();
  seen.logout_cleared = (await sessionCookie()) === undefined;
}

// Short-lived ID tokens: the session is renewed with its refresh token, the user sees nothing.
async function refresh() {
  await signIn(`${gateway}/app/r`);
  const first = header(await echoed(), 'x-token-iat');
  seen.first_iat = first;
  const before = toProvider();
  // Reload until the upstream sees a newer ID token (bounded by TIMEOUT).
  const deadline = Date.now() + TIMEOUT;
  let now = first;
  seen.statuses = [];
  while (now === first && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 250));
    const r = await page.reload();
    seen.statuses.push(r.status());
    now = header(await echoed(), 'x-token-iat');
  }
  seen.renewed_iat = now;
  seen.renewed_url = page.url();
  seen.refresh_went_to_provider = toProvider() > before;
  // Parallel XHRs on an expiring session: all 200 (one refresh, the others wait or use it).
  await new Promise((r) => setTimeout(r, 2500));
  seen.parallel = await page.evaluate(async () => {
    const all = await Promise.all([1, 2, 3, 4, 5].map(() => fetch('/api/p')));
    return all.map((r) => r.status);
  });
  seen.parallel_went_to_provider = toProvider() > before;
}

async function everything() {
  // 1. A navigation to a protected page goes to the provider's login form.
  await page.goto(`${gateway}/app/page?x=1`);
  await page.waitForSelector('input[name=login]');
  seen.login_form_url = page.url();
  await page.fill('input[name=login]', 'alice');
  await page.fill('input[name=password]', 'any');
  await Promise.all([
    page.waitForURL(`${gateway}/app/page?x=1`),
    page.click('button[type=submit]'),
  ]);
  seen.after_login_url = page.url();
  seen.after_login = await echoed();
  const cookie = await sessionCookie();
  seen.session_cookie = cookie && {
    size: cookie.name.length + 1 + cookie.value.length,
    secure: cookie.secure, httpOnly: cookie.httpOnly, sameSite: cookie.sameSite, path: cookie.path,
  };
  seen.login_cookies_left = (await context.cookies(`${gateway}/oauth2/callback`)).filter((c) => c.name.startsWith('__Host-cea_login_')).length;

  // 2. A reload needs no login.
  const before = toProvider();
  await page.reload();
  seen.reload_url = page.url();
  seen.reload = await echoed();
  seen.reload_went_to_provider = toProvider() > before;

  // 3. XHR from the page: 200 with the session, 401 without; never a redirect.
  seen.xhr = await page.evaluate(async () => {
    const withSession = await fetch('/api/data');
    const without = await fetch('/api/data', { credentials: 'omit' });
    return {
      with_session: withSession.status, with_session_body: await withSession.json(),
      without: without.status, without_redirected: without.redirected,
    };
  });

  // 4. A tampered session cookie leads to a new login (the provider's own session signs in
  //    again without a form) and a new session.
  const good = await sessionCookie();
  const flipped = good.value.slice(0, 10) + (good.value[10] === 'A' ? 'B' : 'A') + good.value.slice(11);
  await context.addCookies([{ ...good, value: flipped }]);
  const beforeTamper = toProvider();
  await page.goto(`${gateway}/app/again`);
  await page.waitForURL(`${gateway}/app/again`);
  seen.tampered_went_to_provider = toProvider() > beforeTamper;
  seen.tampered = await echoed();
  seen.tampered_new_cookie = (await sessionCookie()).value !== flipped;

  // 5. Logout ends at the provider's /logout (Cognito's parameters) and clears the session;
  //    the next visit signs in again.
  await page.goto(`${gateway}/logout`);
  await page.waitForURL((u) => u.href.startsWith(`${provider}/logout`));
  seen.logout_url = page.url();
  seen.logout_cleared = (await sessionCookie()) === undefined;
  //    (The provider's own session outlives its logout page here, which nobody confirms: it
  //    signs in again without its form.)
  const beforeNext = toProvider();
  await page.goto(`${gateway}/app/next`);
  await page.waitForURL(`${gateway}/app/next`);
  seen.after_logout_went_to_provider = toProvider() > beforeNext;

  // 6. An open-redirect attempt in the return URL: the browser ends on this gateway.
  await context.clearCookies({ name: '__Host-cea_session_0' });
  const r = await page.goto(`${gateway}//evil.example/steal`);
  await page.waitForLoadState('load');
  seen.open_redirect_url = page.url();
  seen.open_redirect_status = r && r.status();

  // 7. Two tabs sign in at once: each attempt has its own state cookie, both end on their page.
  await context.clearCookies();
  const tabs = [page, await context.newPage()];
  const targets = [`${gateway}/tab/one`, `${gateway}/tab/two`];
  for (const [i, tab] of tabs.entries()) {
    await tab.goto(targets[i]);
    await tab.waitForSelector('input[name=login]');
  }
  seen.two_tabs = [];
  for (const [i, tab] of tabs.entries()) {
    await tab.fill('input[name=login]', 'alice');
    await tab.fill('input[name=password]', 'any');
    await Promise.all([tab.waitForURL(targets[i]), tab.click('button[type=submit]')]);
    seen.two_tabs.push({ url: tab.url(), echo: JSON.parse(await tab.locator('body').innerText()) });
  }
}
