// The SDK against a real dev-mode server: silent login, sessions that end, concurrency,
// refused codes.
'use strict';

const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { createClient, documents } = require('../index.js');
const { startServer, device, codeOf, guard, setupGuard } = require('./harness.js');

let server;
before(async () => {
  server = await startServer();
}, setupGuard);
after(async () => {
  await server.stop();
  delete globalThis.wx;
}, guard);

test('the first call logs in silently, and a restarted app reuses the token', guard, async () => {
  const phone = device(server, { user: 'first' });
  globalThis.wx = phone.wx; // as in a mini-program: the SDK finds the global wx
  const client = createClient({ endpoint: server.endpoint });

  const { me } = await client.query(documents.Me);
  assert.equal(phone.seen.wxLogin, 1);
  assert.equal(phone.logins().length, 1);
  const login = phone.logins()[0].body.data.login;
  assert.equal(me.openid, login.user.openid);
  assert.equal(phone.storage.get('wxlogin_token'), login.token);
  assert.equal(client.token(), login.token);

  await client.query(documents.Sessions);
  const restarted = createClient({ endpoint: server.endpoint });
  const again = await restarted.query(documents.Me);
  assert.equal(again.me.id, me.id);
  assert.equal(phone.seen.wxLogin, 1, 'no second wx.login');
  assert.equal(phone.logins().length, 1, 'no second login');
  for (const call of phone.calls()) {
    assert.equal(call.authorization, 'Bearer ' + login.token);
  }
});

test('a session revoked from another device is re-established silently', guard, async () => {
  const phone = device(server, { user: 'bob' });
  const tablet = device(server, { user: 'bob' });
  const onPhone = createClient({ endpoint: server.endpoint, wx: phone.wx });
  const onTablet = createClient({ endpoint: server.endpoint, wx: tablet.wx });
  const before = await onPhone.query(documents.Me);
  const oldToken = onPhone.token();

  const ended = await onTablet.mutate(documents.LogoutAll, { keepCurrent: true });
  assert.ok(ended.logoutAll >= 1, 'the phone session ended');

  const after = await onPhone.query(documents.Me);
  assert.equal(after.me.id, before.me.id);
  assert.deepEqual(phone.calls().map(codeOf), ['', 'UNAUTHENTICATED', '']);
  assert.equal(phone.seen.wxLogin, 2);
  assert.equal(phone.logins().length, 2);
  assert.notEqual(onPhone.token(), oldToken);
  assert.equal(phone.storage.get('wxlogin_token'), onPhone.token());
});

test('an expired session is re-established silently', guard, async () => {
  // A token the server no longer knows: what an app holds after its session expired
  // and housekeeping purged it.
  const phone = device(server, { user: 'carol' });
  phone.storage.set('wxlogin_token', 'eXpIrEd0000000000000000000000000000000000_0');
  const client = createClient({ endpoint: server.endpoint, wx: phone.wx });

  const { me } = await client.query(documents.Me);
  assert.ok(me.openid);
  assert.equal(phone.calls()[0].authorization, 'Bearer eXpIrEd0000000000000000000000000000000000_0');
  assert.deepEqual(phone.calls().map(codeOf), ['UNAUTHENTICATED', '']);
  assert.equal(phone.logins().length, 1);
  assert.notEqual(phone.storage.get('wxlogin_token'), 'eXpIrEd0000000000000000000000000000000000_0');
});

test('ten concurrent calls share one login, also when the session has ended', guard, async () => {
  const phone = device(server, { user: 'dave' });
  const laptop = device(server, { user: 'dave' });
  const client = createClient({ endpoint: server.endpoint, wx: phone.wx });

  const first = await Promise.all(Array.from({ length: 10 }, () => client.query(documents.Me)));
  assert.equal(new Set(first.map((r) => r.me.id)).size, 1);
  assert.equal(phone.seen.wxLogin, 1);
  assert.equal(phone.logins().length, 1);

  await createClient({ endpoint: server.endpoint, wx: laptop.wx }).mutate(documents.LogoutAll, { keepCurrent: true });
  const second = await Promise.all(Array.from({ length: 10 }, () => client.query(documents.Me)));
  assert.equal(new Set(second.map((r) => r.me.id)).size, 1);
  assert.equal(phone.seen.wxLogin, 2, 'one more wx.login for the ten');
  assert.equal(phone.logins().length, 2, 'one more login for the ten');
});

test('INVALID_CODE takes a fresh wx.login; a second one is reported', guard, async () => {
  const phone = device(server, { user: 'erin', codes: ['a-code-wechat-never-issued'] });
  const client = createClient({ endpoint: server.endpoint, wx: phone.wx });
  await client.query(documents.Me);
  assert.equal(phone.seen.wxLogin, 2);
  assert.deepEqual(phone.logins().map(codeOf), ['INVALID_CODE', '']);
  const [spent, fresh] = phone.logins().map((r) => r.variables.code);
  assert.equal(spent, 'a-code-wechat-never-issued');
  assert.notEqual(fresh, spent);

  const broken = device(server, { codes: ['never-issued-1', 'never-issued-2'] });
  const err = await createClient({ endpoint: server.endpoint, wx: broken.wx }).query(documents.Me).then(
    () => assert.fail('resolved'), (e) => e);
  assert.equal(err.code, 'INVALID_CODE');
  assert.equal(err.errors[0].extensions.code, 'INVALID_CODE');
  assert.equal(err.requestId, broken.logins()[1].requestId);
  assert.match(err.requestId, /^[0-9a-f]+$/);
  assert.equal(broken.seen.wxLogin, 2);
  assert.equal(broken.seen.requests.length, 2);
});

test('FORBIDDEN is reported at once', guard, async () => {
  const phone = device(server, { codes: ['fault-risky'] });
  const err = await createClient({ endpoint: server.endpoint, wx: phone.wx, sleep: phone.sleep })
    .query(documents.Me).then(() => assert.fail('resolved'), (e) => e);
  assert.equal(err.code, 'FORBIDDEN');
  assert.equal(err.name, 'WxloginError');
  assert.ok(err instanceof Error);
  assert.equal(phone.seen.requests.length, 1);
  assert.deepEqual(phone.seen.waits, []);
});

test('UNAUTHENTICATED right after a login is retried once, then reported', guard, async () => {
  // A proxy that drops the Authorization header: every session "ends" at once.
  const phone = device(server, { user: 'frank', stripAuthorization: true });
  const err = await createClient({ endpoint: server.endpoint, wx: phone.wx })
    .query(documents.Me).then(() => assert.fail('resolved'), (e) => e);
  assert.equal(err.code, 'UNAUTHENTICATED');
  assert.equal(phone.logins().length, 2);
  assert.equal(phone.calls().length, 2);
});

test('logout ends the session on the server; the next call logs in again', guard, async () => {
  const phone = device(server, { user: 'grace' });
  const client = createClient({ endpoint: server.endpoint, wx: phone.wx });
  await client.query(documents.Me);
  const token = client.token();

  assert.equal(await client.logout(), true);
  assert.equal(client.token(), null);
  assert.equal(phone.storage.has('wxlogin_token'), false);
  const res = await fetch(server.endpoint, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', Authorization: 'Bearer ' + token },
    body: JSON.stringify({ query: documents.Me }),
  }).then((r) => r.json());
  assert.equal(res.errors[0].extensions.code, 'UNAUTHENTICATED', 'the old token no longer works');
  const sent = phone.seen.requests.length;
  assert.equal(await client.logout(), false, 'nothing to log out of');
  assert.equal(phone.seen.requests.length, sent, 'and no request for it');

  await client.query(documents.Me);
  assert.equal(phone.logins().length, 2);
});

test('login() logs in now and gives the payload', guard, async () => {
  const phone = device(server, { user: 'new-person' });
  const client = createClient({ endpoint: server.endpoint, wx: phone.wx });
  const [a, b] = await Promise.all([client.login(), client.login()]);
  assert.equal(a, b, 'two calls at once share one login');
  assert.equal(a.isNewUser, true);
  assert.equal(a.token, client.token());
  assert.equal(phone.logins().length, 1);
});
