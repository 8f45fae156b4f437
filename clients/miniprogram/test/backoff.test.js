// Backing off: RATE_LIMITED (WeChat's and the server's own) and WECHAT_UNAVAILABLE. The
// waits are recorded, not waited: the tests check what the SDK asked for.
'use strict';

const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { createClient, documents } = require('../index.js');
const { startServer, device, codeOf, guard, setupGuard } = require('./harness.js');

let server; // dev mode, default limits
let strict; // allows one login per minute per address
before(async () => {
  [server, strict] = await Promise.all([
    startServer(),
    startServer({ WXLOGIN_LOGIN_RATE_LIMIT: '1', WXLOGIN_LOGIN_RATE_BURST: '1' }),
  ]);
}, setupGuard);
after(async () => {
  await Promise.all([server.stop(), strict.stop()]);
}, guard);

function rejection(promise) {
  return promise.then(() => assert.fail('resolved'), (e) => e);
}

test("WeChat's RATE_LIMITED: waits retryAfter, then logs in with a fresh code", guard, async () => {
  const phone = device(server, { user: 'hana', codes: ['fault-ratelimit'] });
  const client = createClient({ endpoint: server.endpoint, wx: phone.wx, sleep: phone.sleep });
  const { me } = await client.query(documents.Me);
  assert.ok(me.openid);
  const [limited, ok] = phone.logins();
  assert.equal(codeOf(limited), 'RATE_LIMITED');
  assert.equal(codeOf(ok), '');
  assert.deepEqual(phone.seen.waits, [limited.body.errors[0].extensions.retryAfter * 1000]);
  assert.equal(phone.seen.wxLogin, 2);
  assert.notEqual(ok.variables.code, 'fault-ratelimit');
});

test("the server's own RATE_LIMITED: each retryAfter waited, retries bounded", guard, async () => {
  const first = device(strict, { user: 'ivan' });
  await createClient({ endpoint: strict.endpoint, wx: first.wx }).query(documents.Me); // spends the burst

  const phone = device(strict, { user: 'ivan' });
  const client = createClient({ endpoint: strict.endpoint, wx: phone.wx, sleep: phone.sleep, retries: 2 });
  const err = await rejection(client.query(documents.Me));
  const logins = phone.logins();
  assert.equal(err.code, 'RATE_LIMITED');
  assert.equal(err.retryAfter, logins[2].body.errors[0].extensions.retryAfter);
  assert.ok(err.retryAfter > 0);
  assert.equal(err.requestId, logins[2].requestId);
  assert.deepEqual(logins.map(codeOf), ['RATE_LIMITED', 'RATE_LIMITED', 'RATE_LIMITED'], 'one try and two retries');
  assert.deepEqual(phone.seen.waits, logins.slice(0, 2).map((l) => l.body.errors[0].extensions.retryAfter * 1000));
  assert.equal(phone.calls().length, 0, 'the query never went out without a session');
});

test('a retryAfter longer than maxWait is reported at once', guard, async () => {
  const phone = device(strict, { user: 'ivan' });
  const client = createClient({ endpoint: strict.endpoint, wx: phone.wx, sleep: phone.sleep, maxWait: 5 });
  const err = await rejection(client.query(documents.Me));
  assert.equal(err.code, 'RATE_LIMITED');
  assert.ok(err.retryAfter > 5);
  assert.equal(phone.logins().length, 1);
  assert.deepEqual(phone.seen.waits, []);
});

test('WECHAT_UNAVAILABLE: bounded retries with jitter, with the same code', guard, async () => {
  const phone = device(server, { codes: ['fault-busy'] });
  const client = createClient({ endpoint: server.endpoint, wx: phone.wx, sleep: phone.sleep, retries: 3 });
  const err = await rejection(client.query(documents.Me));
  assert.equal(err.code, 'WECHAT_UNAVAILABLE');
  assert.equal(phone.seen.wxLogin, 1, 'the code is not thrown away');
  assert.deepEqual(phone.logins().map((l) => l.variables.code), ['fault-busy', 'fault-busy', 'fault-busy', 'fault-busy']);
  assert.equal(phone.seen.waits.length, 3);
  phone.seen.waits.forEach((ms, i) => {
    const ceiling = 1000 * 2 ** i;
    assert.ok(ms >= ceiling / 2 && ms <= ceiling, `wait ${i}: ${ms} ms, want ${ceiling / 2}..${ceiling}`);
  });
});

test('WECHAT_UNAVAILABLE with a code about to expire: the retry takes a fresh one', guard, async () => {
  // Each wait moves the clock on five minutes: past the code's life.
  const clock = { now: Date.parse('2026-11-23T08:00:00Z') };
  const phone = device(server, { user: 'jun', codes: ['fault-busy'], clock });
  const client = createClient({
    endpoint: server.endpoint,
    wx: phone.wx,
    sleep: (ms) => phone.sleep(ms).then(() => { clock.now += 5 * 60 * 1000; }),
    now: () => clock.now,
  });
  const { me } = await client.query(documents.Me);
  assert.ok(me.openid);
  assert.equal(phone.seen.wxLogin, 2);
  assert.deepEqual(phone.logins().map(codeOf), ['WECHAT_UNAVAILABLE', '']);
  assert.equal(phone.seen.waits.length, 1);
});
