// The playground's browser test: headless Chromium opens the page, logs in through
// GraphiQL's editors and buttons as a person would, puts the token in the headers editor,
// runs `me`, and sees the openid. It fails when the page asked any host but the server
// for anything, or broke its Content-Security-Policy.
//
//   node browser-test.mjs BASE_URL WANT_OPENID SCREENSHOT.png
//
// The Go test TestPlaygroundInBrowser (../../../browser_test.go) starts the server and
// runs this; CHROMIUM names the browser (default /usr/bin/chromium).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

const [base, wantOpenID, screenshot] = process.argv.slice(2);
if (!base || !wantOpenID || !screenshot) {
  console.error('usage: node browser-test.mjs BASE_URL WANT_OPENID SCREENSHOT.png');
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
  viewport: { width: 1280, height: 800 },
});

const requests = [];
const problems = [];
context.on('request', (req) => requests.push(req.url()));
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

// The schema GraphiQL loads on opening (for its docs and autocompletion): "ok", or what
// went wrong.
let schemaLoad = null;
page.on('response', async (res) => {
  const req = res.request();
  if (req.method() !== 'POST' || !(req.postData() ?? '').includes('__schema')) return;
  try {
    const body = await res.json();
    schemaLoad = body.errors ? `errors: ${JSON.stringify(body.errors)}` : 'ok';
  } catch (err) {
    schemaLoad = `an answer that is not JSON (${res.status()}): ${err.message}`;
  }
});

// runAndWaitFor presses GraphiQL's run button and waits for the result pane to match.
const result = page.locator('.result-window');
async function runAndWaitFor(pattern, what) {
  await page.getByRole('button', { name: /execute query/i }).click();
  try {
    await page.waitForFunction(
      ([re, flags]) => new RegExp(re, flags).test(document.querySelector('.result-window')?.innerText ?? ''),
      [pattern.source, pattern.flags], wait);
  } catch {
    fail(`the result pane never showed ${what}; it shows:\n${await result.innerText()}`);
  }
  return result.innerText();
}

// replaceEditor selects everything in one of GraphiQL's editors and types text in its
// place (as a paste: the editor's bracket auto-closing does not interfere).
async function replaceEditor(editor, text) {
  await editor.locator('.CodeMirror').click();
  await page.keyboard.press('Control+A');
  await page.keyboard.insertText(text);
}

try {
  const response = await page.goto(`${base}/`, { waitUntil: 'load', ...wait });
  if (response.status() !== 200) fail(`GET / answered ${response.status()}`);

  const query = page.locator('.graphiql-query-editor');
  await query.getByText('dev-alice').first().waitFor(wait);
  console.log('page: GraphiQL opened with the dev login mutation');
  for (let i = 0; i < 300 && schemaLoad === null; i++) await new Promise((r) => setTimeout(r, 50));
  if (schemaLoad !== 'ok') fail(`GraphiQL could not load the schema: ${schemaLoad ?? 'it never asked'}`);
  console.log('page: the schema loaded, so docs and autocompletion work');

  // The settings dialog adds a <style> element, which the page's policy must let apply.
  await page.getByRole('button', { name: /settings/i }).click();
  await page.getByRole('dialog').waitFor(wait);
  await page.keyboard.press('Escape');
  await page.getByRole('dialog').waitFor({ state: 'detached', ...wait });

  const login = await runAndWaitFor(/"token":\s*"[^"<]+"/, 'a login token');
  const token = login.match(/"token":\s*"([^"]+)"/)[1];
  if (!login.includes(wantOpenID)) fail(`login logged in someone other than ${wantOpenID}:\n${login}`);
  console.log(`login: got a token of ${token.length} characters for openid ${wantOpenID}`);

  const headersTab = page.getByRole('button', { name: 'Headers' });
  if ((await headersTab.getAttribute('aria-selected')) !== 'true') await headersTab.click();
  const headers = page.locator('.graphiql-editor-tool .graphiql-editor:not(.hidden)');
  await headers.getByText('Authorization').first().waitFor(wait);
  await replaceEditor(headers, `{\n  "Authorization": "Bearer ${token}"\n}`);
  await replaceEditor(query, '{ me { openid } }');

  await runAndWaitFor(new RegExp(`"openid":\\s*"${wantOpenID}"`), `me's openid ${wantOpenID}`);
  console.log(`me: the result pane shows openid ${wantOpenID}`);
} finally {
  await page.screenshot({ path: screenshot }).catch((err) => console.error(`no screenshot: ${err.message}`));
  await context.close();
  rmSync(profile, { recursive: true, force: true });
}

const elsewhere = requests.filter((u) => {
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
