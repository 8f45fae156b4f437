// The example mini-program (examples/miniprogram), run as DevTools would run it: App,
// Page and getApp simulated, its page driven as a person would, against a dev server.
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

test('the example page shows the openid of the dev user, and logs out', guard, async () => {
  // app.js points at http://localhost:8080, where `go run .` serves; here, the test's server.
  const phone = device(server, { hosts: { 'http://localhost:8080': server.base } });
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
  require(path.join(example, 'app.js'));
  require(path.join(example, 'pages', 'index', 'index.js'));

  const wxml = fs.readFileSync(path.join(example, 'pages', 'index', 'index.wxml'), 'utf8');
  for (const [, handler] of wxml.matchAll(/bindtap="(\w+)"/g)) {
    assert.equal(typeof page[handler], 'function', `the page has ${handler}()`);
  }
  for (const [, field] of wxml.matchAll(/\{\{(\w+)\}\}/g)) {
    assert.ok(field in page.data, `the page's data has ${field}`);
  }

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
