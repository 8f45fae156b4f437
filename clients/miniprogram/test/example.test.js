// The example mini-program (examples/miniprogram), run as DevTools would run it: App,
// Page and getApp simulated, its pages driven as a person would, against a dev server.
'use strict';

const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { startServer, device, guard, setupGuard } = require('./harness.js');

const example = path.join(__dirname, '..', '..', '..', 'examples', 'miniprogram');

let server;
before(async () => {
  server = await startServer();
}, setupGuard);
after(async () => {
  await server.stop();
  for (const name of ['wx', 'App', 'Page', 'getApp']) {
    delete globalThis[name];
  }
}, guard);

/**
 * openPage launches the example on the phone and returns its page `name` (as app.json
 * names it) before onLoad: each call a fresh launch, with the app's own client. It
 * checks that every handler and data field the page's WXML names exists.
 */
function openPage(phone, name) {
  let app = null;
  let page = null;
  Object.assign(globalThis, {
    wx: phone.wx,
    App: (options) => { app = options; },
    getApp: () => app,
    Page: (options) => {
      page = { ...options, data: { ...options.data } };
      page.setData = (changes) => Object.assign(page.data, changes);
    },
  });
  for (const file of ['app.js', name + '.js']) {
    const module = path.join(example, file);
    delete require.cache[require.resolve(module)];
    require(module);
  }

  const wxml = fs.readFileSync(path.join(example, name + '.wxml'), 'utf8');
  for (const [, handler] of wxml.matchAll(/bindtap="(\w+)"/g)) {
    assert.equal(typeof page[handler], 'function', `the page has ${handler}()`);
  }
  for (const [, field] of wxml.matchAll(/\{\{\s*!?(\w+)/g)) {
    assert.ok(field in page.data, `the page's data has ${field}`);
  }
  assert.ok(JSON.parse(fs.readFileSync(path.join(example, 'app.json'), 'utf8')).pages.includes(name),
    `app.json lists ${name}`);
  return page;
}

// app.js points at http://localhost:8080, where `go run .` serves; here, the test's server.
const phoneOf = (srv) => device(srv, { hosts: { 'http://localhost:8080': srv.base } });

test('the example page shows the openid of the dev user, and logs out', guard, async () => {
  const phone = phoneOf(server);
  const page = openPage(phone, 'pages/index/index');

  await page.load(); // what onLoad starts
  assert.equal(page.data.error, '');
  const login = phone.logins()[0];
  assert.equal(login.variables.code, 'dev-alice');
  assert.equal(page.data.openid, login.body.data.login.user.openid);

  await page.logout();
  assert.equal(page.data.openid, '');
  assert.equal(page.data.loggedOut, true);
  assert.equal(phone.storage.size, 0, 'the token is forgotten');
});

// startWebLogin is the browser's part: a web login started with a plain fetch, as a web
// page would, and a poll of where it stands.
async function startWebLogin(userAgent) {
  const post = (query, variables) => fetch(server.endpoint, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', 'User-Agent': userAgent },
    body: JSON.stringify({ query, variables }),
  }).then((res) => res.json());
  const { data } = await post('mutation { startWebLogin { id secret } }');
  const { id, secret } = data.startWebLogin;
  return {
    id,
    poll: async () => (await post('query ($id: ID!, $secret: String!) { webLogin(id: $id, secret: $secret) { state session { user { openid } } } }',
      { id, secret })).data.webLogin,
  };
}

test('the confirm page shows who asks, and confirming logs the browser in as the phone\'s user', guard, async () => {
  const browser = await startWebLogin('ExampleBrowser/1.0 (the confirm page test)');
  const phone = phoneOf(server);
  const page = openPage(phone, 'pages/weblogin/weblogin');

  // WeChat passes the code's scene URI-encoded in onLoad's options.
  await page.scan({ scene: encodeURIComponent(browser.id) }); // what onLoad starts
  assert.equal(page.data.error, '');
  assert.equal(page.data.step, 'ask');
  assert.equal(page.data.userAgent, 'ExampleBrowser/1.0 (the confirm page test)');
  assert.equal(page.data.ip, '127.0.0.1');
  assert.match(page.data.asked, /^\d\d:\d\d:\d\d$/);
  assert.equal((await browser.poll()).state, 'SCANNED');

  await page.confirm();
  assert.equal(page.data.error, '');
  assert.equal(page.data.step, 'confirmed');
  const status = await browser.poll();
  assert.equal(status.state, 'CONFIRMED');
  assert.equal(status.session.user.openid, phone.logins()[0].body.data.login.user.openid);

  // The same code scanned again: the server's message, and no "Try again".
  const again = openPage(phone, 'pages/weblogin/weblogin');
  await again.scan({ scene: browser.id });
  assert.equal(again.data.error, 'This web login was confirmed already: a code logs one browser in once.');
  assert.equal(again.data.canRetry, false);
});

test('the confirm page cancels, and says so when opened without a code', guard, async () => {
  const browser = await startWebLogin('ExampleBrowser/1.0');
  const phone = phoneOf(server);
  const page = openPage(phone, 'pages/weblogin/weblogin');
  await page.scan({ scene: browser.id });
  await page.cancel();
  assert.equal(page.data.error, '');
  assert.equal(page.data.step, 'cancelled');
  assert.equal((await browser.poll()).state, 'CANCELLED');

  // Opened from the recent list: no scene. The SDK says so without asking the server.
  const bare = openPage(phone, 'pages/weblogin/weblogin');
  await bare.scan({});
  assert.match(bare.data.error, /scanning the code on the web page/);
  assert.equal(bare.data.canRetry, false);
});
