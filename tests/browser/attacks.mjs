// What an attacker tries against browser sessions, in Debian's chromium, for
// tests/browser_login.rs: a sibling host of the same site planting the filter's cookies (a
// session, a login state), a cross-site page flooding a victim with sign-ins, and a route a
// session can never satisfy.
//
// Usage: node attacks.mjs <gateway origin (https://app.example.test:P)> <provider origin>
//        <user-data-dir> <cert.pem> <key.pem>
// The sibling (evil.example.test) and the cross-site page (attacker.test) are served here, over
// HTTPS with the same certificate, on a port the OS chooses; Chromium maps *.example.test and
// attacker.test to 127.0.0.1. Prints one JSON object of observations on stdout.
import { chromium } from 'playwright-core';
import https from 'node:https';
import fs from 'node:fs';

const [gateway, provider, userDataDir, certFile, keyFile] = process.argv.slice(2);
const TIMEOUT = 30_000;
const seen = {};

// The sibling host and the cross-site page.
const plants = [];
const server = https.createServer({ cert: fs.readFileSync(certFile), key: fs.readFileSync(keyFile) }, (req, res) => {
  const url = new URL(req.url, 'https://x');
  if (url.pathname === '/plant') {
    // Every form of the name a sibling can try, for the whole site.
    const name = url.searchParams.get('name');
    const value = url.searchParams.get('value');
    const bare = name.replace(/^__Host-/, '');
    res.setHeader('set-cookie', [
      `${name}=${value}; Domain=example.test; Path=/; Secure; SameSite=Lax`,
      `${name}=${value}; Path=/; Secure; SameSite=Lax`,
      `${bare}=${value}; Domain=example.test; Path=/; Secure; SameSite=Lax`,
      `__Secure-${bare}=${value}; Domain=example.test; Path=/; Secure; SameSite=Lax`,
    ]);
    plants.push(name);
    res.end('planted');
  } else if (url.pathname === '/go') {
    // A cross-site page that sends the browser to the gateway (a top-level navigation).
    res.setHeader('content-type', 'text/html');
    res.end(`<!doctype html><script>location.href = ${JSON.stringify(url.searchParams.get('to'))};</script>`);
  } else {
    res.statusCode = 404;
    res.end();
  }
});
await new Promise((r) => server.listen(0, '127.0.0.1', r));
const port = server.address().port;
const sibling = `https://evil.example.test:${port}`;
const crossSite = `https://attacker.test:${port}`;

const launch = (dir) => chromium.launchPersistentContext(dir, {
  executablePath: '/usr/bin/chromium',
  headless: true,
  ignoreHTTPSErrors: true,
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync',
    '--ignore-certificate-errors',
    '--host-resolver-rules=MAP *.example.test 127.0.0.1, MAP attacker.test 127.0.0.1'],
  timeout: TIMEOUT,
});
const echoed = async (page) => JSON.parse(await page.locator('body').innerText());
const header = (echo, name) => (echo.headers.find((h) => h[0] === name) || [])[1];
const ours = async (context) => (await context.cookies(gateway)).map((c) => c.name);

async function signIn(page, url, login) {
  await page.goto(url);
  await page.waitForSelector('input[name=login]');
  await page.fill('input[name=login]', login);
  await page.fill('input[name=password]', 'any');
  await Promise.all([page.waitForURL(url), page.click('button[type=submit]')]);
}

let attacker;
let victim;
try {
  // The attacker signs in as mallory: her session cookie, and a sign-in of hers stopped at
  // its callback (its code unused, its login-state cookie in hand).
  attacker = await launch(`${userDataDir}/attacker`);
  attacker.setDefaultTimeout(TIMEOUT);
  const a = attacker.pages()[0] ?? await attacker.newPage();
  await signIn(a, `${gateway}/app/mallory`, 'mallory');
  seen.attacker_identity = header(await echoed(a), 'x-auth-email');
  const malloryCookies = (await attacker.cookies(gateway)).filter((c) => c.name.startsWith('__Host-cea_session_'));
  await attacker.clearCookies();
  // Her login state taken, then dropped from her browser: her callback fails at the gateway
  // before its code is exchanged, and the code is hers to use.
  await a.goto(`${gateway}/app/csrf`);
  await a.waitForSelector('input[name=login]');
  const attempt = (await attacker.cookies(gateway)).find((c) => c.name.startsWith('__Host-cea_login_'));
  await attacker.clearCookies({ name: attempt.name });
  await a.fill('input[name=login]', 'mallory');
  await a.fill('input[name=password]', 'any');
  await Promise.all([
    a.waitForURL((u) => u.href.startsWith(`${gateway}/oauth2/callback`)),
    a.click('button[type=submit]'),
  ]);
  const callback = a.url();
  seen.csrf_prepared = Boolean(callback && attempt);

  victim = await launch(`${userDataDir}/victim`);
  victim.setDefaultTimeout(TIMEOUT);
  const v = victim.pages()[0] ?? await victim.newPage();
  const requests = [];
  v.on('request', (r) => requests.push(r.url()));
  const toProvider = () => requests.filter((u) => u.startsWith(`${provider}/oauth2/authorize`)).length;
  const plant = async (c) => {
    await v.goto(`${sibling}/plant?name=${encodeURIComponent(c.name)}&value=${encodeURIComponent(c.value)}`);
  };

  // 1. Without a session of her own: the sibling plants mallory's session, the victim opens
  //    the app — she is sent to sign in, never made mallory.
  for (const c of malloryCookies) await plant(c);
  seen.cookies_after_plant = await ours(victim);
  await v.goto(`${gateway}/app/planted`);
  await v.waitForSelector('input[name=login]');
  seen.planted_without_session_url = v.url();
  // 2. She signs in as alice; the sibling plants again; she is still alice.
  await v.fill('input[name=login]', 'alice');
  await v.fill('input[name=password]', 'any');
  await Promise.all([v.waitForURL(`${gateway}/app/planted`), v.click('button[type=submit]')]);
  seen.signed_in_identity = header(await echoed(v), 'x-auth-email');
  for (const c of malloryCookies) await plant(c);
  await v.goto(`${gateway}/app/after-plant`);
  seen.planted_with_session_identity = header(await echoed(v), 'x-auth-email');

  // 3. Login CSRF: the sibling plants mallory's login state and sends the victim to mallory's
  //    callback (after the victim signed out of the app).
  await victim.clearCookies();
  if (attempt) await plant(attempt);
  const csrf = await v.goto(callback);
  seen.csrf_status = csrf && csrf.status();
  seen.csrf_page = (await v.locator('body').innerText()).slice(0, 300);
  seen.csrf_session = (await ours(victim)).filter((n) => n.includes('session')).length;

  // 4. A cross-site page starts many sign-ins with long return paths; then the victim signs
  //    in as usual.
  await victim.clearCookies();
  const long = 'x'.repeat(1500);
  for (let i = 0; i < 40; i++) {
    await v.goto(`${crossSite}/go?to=${encodeURIComponent(`${gateway}/flood/${i}?${long}`)}`);
    await v.waitForURL((u) => u.href.startsWith(provider));
  }
  seen.login_states_after_flood = (await ours(victim)).filter((n) => n.startsWith('__Host-cea_login_')).length;
  await signIn(v, `${gateway}/app/after-flood`, 'alice');
  seen.after_flood_url = v.url();
  seen.after_flood_identity = header(await echoed(v), 'x-auth-email');
  seen.login_states_after_sign_in = (await ours(victim)).filter((n) => n.startsWith('__Host-cea_login_')).length;

  // 5. Signed in, on a route that needs what an ID-token session cannot give: a page that
  //    says why, and no trip to the provider.
  const before = toProvider();
  const live = await v.goto(`${gateway}/live/report`);
  seen.live_status = live && live.status();
  seen.live_url = v.url();
  seen.live_page = (await v.locator('body').innerText()).slice(0, 300);
  seen.live_went_to_provider = toProvider() > before;
  seen.plants = plants.length;
} catch (e) {
  seen.error = `${e}`;
} finally {
  await attacker?.close();
  await victim?.close();
  server.close();
}
console.log(JSON.stringify(seen));
