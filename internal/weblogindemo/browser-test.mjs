// The web login demo's browser test: headless Chromium opens /weblogin and logs in three
// times, as people would:
//
//   1. the dev panel, as alice, cancels: the page says Cancelled;
//   2. with the subscription's stream refused, the page asks once a second; the dev
//      panel, as bob, scans and confirms: the page shows bob's openid;
//   3. over the stream, a simulated phone runs the SDK (clients/miniprogram) as
//      alice: scanWebLogin, the page says "Confirm on your phone", confirmWebLogin, the
//      page shows alice's openid.
//
// It fails when the page asked any host but the server for anything, or broke its
// Content-Security-Policy.
//
//   node browser-test.mjs BASE_URL ALICE_OPENID BOB_OPENID SCREENSHOT.png
//
// The Go test TestWebLoginInBrowser (../../weblogin_browser_test.go) starts the server
// and runs this; CHROMIUM names the browser (default /usr/bin/chromium).
import { createRequire } from 'node:module';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const require = createRequire(import.meta.url);
// playwright-core is installed for the playground's browser test.
const { chromium } = createRequire(new URL('../playground/web/package.json', import.meta.url))('playwright-core');
const { createClient } = require('../../clients/miniprogram/index.js');
const { device } = require('../../clients/miniprogram/test/harness.js');

const [base, aliceOpenID, bobOpenID, screenshot] = process.argv.slice(2);
if (!base || !aliceOpenID || !bobOpenID || !screenshot) {
  console.error('usage: node browser-test.mjs BASE_URL ALICE_OPENID BOB_OPENID SCREENSHOT.png');
  process.exit(2);
}
const origin = new URL(base).origin;
const wait = { timeout: 60_000 }; // conditions, not timings: generous for slow machines

const profile = mkdtempSync(join(tmpdir(), 'wxlogin-chromium-'));
const context = await chromium.launchPersistentContext(profile, {
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  chromiumSandbox: false,
  // The machine may have no network: without these Chromium waits on refused connections.
  args: ['--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
    '--disable-component-update', '--disable-sync'],
  viewport: { width: 900, height: 900 },
});

const requests = [];
const problems = [];
let polls = 0; // WebLoginStatus queries: the page's fallback from the stream
context.on('request', (req) => {
  requests.push(req.url());
  if ((req.postData() ?? '').includes('query WebLoginStatus')) polls++;
});
const page = context.pages()[0] ?? (await context.newPage());
page.on('pageerror', (err) => problems.push(`uncaught error in the page: ${err.message}`));
page.on('console', (msg) => {
  if (msg.type() === 'error' && /Content Security Policy/i.test(msg.text())) {
    problems.push(`Content-Security-Policy violation: ${msg.text()}`);
  }
});

function fail(message) {
  throw new Error(message);
}

// shows waits until the element's text is want.
async function shows(selector, want) {
  try {
    await page.waitForFunction(([s, w]) => document.querySelector(s)?.textContent === w, [selector, want], wait);
  } catch {
    fail(`${selector} never showed "${want}"; it shows "${await page.locator(selector).textContent()}"`);
  }
  console.log(`page: ${selector} shows "${want}"`);
}

// attempt waits for the page to show a web login other than `before`, and its code.
async function attempt(before) {
  await page.waitForFunction((b) => {
    const id = document.querySelector('#login').dataset.attempt;
    return id && id !== b;
  }, before, wait);
  const id = await page.locator('#login').getAttribute('data-attempt');
  if ((await page.locator('#attempt').textContent()) !== id) fail('the page shows another id than its data-attempt');
  const src = await page.locator('#code').getAttribute('src');
  if (!(await page.locator('#code').isVisible()) || !src.startsWith('data:image/')) fail(`the code is not shown (src ${src?.slice(0, 30)})`);
  await shows('#status', 'Scan with WeChat');
  return id;
}

async function panel(user, button) {
  await page.locator('#phone-user').fill(user);
  await page.locator(`#phone-${button}`).click();
}

try {
  const response = await page.goto(`${base}/weblogin`, { waitUntil: 'load', ...wait });
  if (response.status() !== 200) fail(`GET /weblogin answered ${response.status()}`);

  // 1. Cancelled from the panel.
  const first = await attempt('');
  await panel('alice', 'cancel');
  await shows('#status', 'Cancelled');
  if (!(await page.locator('#again').isVisible())) fail('no button to start again');

  // 2. No stream: the page asks once a second; the panel logs bob in.
  await page.route(`${base}/graphql`, (route) =>
    route.request().headers().accept?.includes('text/event-stream') ? route.abort() : route.fallback());
  await page.locator('#again').click();
  const second = await attempt(first);
  await panel('bob', 'scan');
  await shows('#status', 'Confirm on your phone');
  await panel('bob', 'confirm');
  await shows('#who', `Logged in as ${bobOpenID}`);
  if (polls === 0) fail('the page never asked for the status with the stream refused');
  console.log(`page: without the stream it asked ${polls} times`);
  await page.unroute(`${base}/graphql`);

  // 3. Over the stream, the phone's SDK logs alice in.
  polls = 0;
  await page.locator('#again').click();
  const third = await attempt(second);
  const phone = device({ base }, { user: 'alice' });
  const client = createClient({ endpoint: `${base}/graphql`, wx: phone.wx });
  const asked = await client.scanWebLogin({ scene: encodeURIComponent(third) });
  const browserUA = await page.evaluate(() => navigator.userAgent);
  if (asked.userAgent !== browserUA) fail(`the phone was told the browser is ${asked.userAgent}, not ${browserUA}`);
  console.log(`phone: scanned ${third}, asked by ${asked.ip}`);
  await shows('#status', 'Confirm on your phone');
  await client.confirmWebLogin(third);
  await shows('#who', `Logged in as ${aliceOpenID}`);
  if (await page.locator('#code').isVisible()) fail('the code is still shown once logged in');
  if (polls > 0) fail(`the page asked ${polls} times instead of following the stream`);
  await page.screenshot({ path: screenshot });
} catch (err) {
  await page.screenshot({ path: screenshot }).catch((e) => console.error(`no screenshot: ${e.message}`));
  throw err;
} finally {
  await context.close();
  rmSync(profile, { recursive: true, force: true });
}

const elsewhere = requests.filter((u) => {
  if (u.startsWith('data:')) return false; // the code's image, from no host
  try {
    return new URL(u).origin !== origin;
  } catch {
    return true;
  }
});
console.log(`requests: ${requests.length}, all to ${origin}: ${elsewhere.length === 0}`);
for (const u of elsewhere) problems.push(`the page made a request to another host: ${u}`);
if (problems.length > 0) {
  for (const p of problems) console.error(p);
  process.exit(1);
}
console.log(`screenshot: ${screenshot}`);
