// The SDK's account methods against a real dev-mode server: a copy of one's data, and
// the deletion of one's account.
'use strict';

const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { createClient, documents } = require('../index.js');
const { startServer, device, guard, setupGuard } = require('./harness.js');

let server;
before(async () => {
  server = await startServer();
}, setupGuard);
after(async () => {
  await server.stop();
}, guard);

test('exportMyData logs in silently and gives everything the server holds', guard, async () => {
  const phone = device(server, { user: 'gina' });
  const client = createClient({ endpoint: server.endpoint, wx: phone.wx });
  const data = await client.exportMyData();
  const { me } = await client.query(documents.Me);
  assert.equal(phone.logins().length, 1);
  assert.equal(data.user.id, me.id);
  assert.equal(data.identities.length, 1);
  assert.equal(data.identities[0].openid, me.openid);
  assert.equal(data.sessions.length, 1);
  assert.equal(data.sessions[0].current, true);
  assert.ok(data.auditEvents.some((e) => e.event === 'login_succeeded'));
  assert.ok(!JSON.stringify(data).includes('session_key') && !JSON.stringify(data).includes('sessionKey'));
});

test('deleteAccount ends the account and forgets the token; the next call is a new user', guard, async () => {
  const phone = device(server, { user: 'hank' });
  const client = createClient({ endpoint: server.endpoint, wx: phone.wx });
  const before = await client.query(documents.Me);
  const oldToken = client.token();

  assert.equal(await client.deleteAccount(), true);
  assert.equal(client.token(), null);
  assert.equal(phone.storage.has('wxlogin_token'), false);

  const restarted = createClient({ endpoint: server.endpoint, wx: phone.wx });
  assert.equal(restarted.token(), null, 'no token survives a restart either');
  const after = await client.query(documents.Me);
  assert.notEqual(after.me.id, before.me.id, 'a new user');
  assert.equal(after.me.openid, before.me.openid, 'with the same WeChat identity');
  const login = phone.logins()[1].body.data.login;
  assert.equal(login.isNewUser, true);

  const res = await fetch(server.endpoint, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', Authorization: 'Bearer ' + oldToken },
    body: JSON.stringify({ query: '{ me { id } }' }),
  });
  const body = await res.json();
  assert.equal(body.errors[0].extensions.code, 'UNAUTHENTICATED', 'the old token is dead');
});
