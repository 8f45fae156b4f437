// The SDK calling a team's other services with the session's token, through a gateway
// that checks it with wxlogin: the real server's /auth/verify stands in for that
// gateway (200 with the user's headers for a live session, 401 for anything else).
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

test('request carries the token, logging in first, to a service behind the gateway', guard, async () => {
  const phone = device(server, { user: 'carol' });
  const client = createClient({ endpoint: server.endpoint, wx: phone.wx });

  const res = await client.request({ url: server.base + '/auth/verify/orders', header: { Authorization: 'Bearer stale', 'X-Trace': '1' } });
  assert.equal(res.statusCode, 200);
  assert.equal(phone.logins().length, 1, 'logged in silently first');
  const { me } = await client.query(documents.Me);
  assert.equal(res.header['x-wxlogin-user-id'], me.id);
  assert.equal(res.header['x-wxlogin-openid'], me.openid);
  assert.equal(phone.services()[0].authorization, 'Bearer ' + client.token(), "the session's token, not the caller's");
});

test('a 401 from the service logs in again, once, and retries', guard, async () => {
  const phone = device(server, { user: 'dave' });
  const tablet = device(server, { user: 'dave' });
  const onPhone = createClient({ endpoint: server.endpoint, wx: phone.wx });
  const onTablet = createClient({ endpoint: server.endpoint, wx: tablet.wx });
  await onPhone.query(documents.Me);
  const oldToken = onPhone.token();
  await onTablet.mutate(documents.LogoutAll, { keepCurrent: true });

  const res = await onPhone.request({ url: server.base + '/auth/verify', method: 'POST', data: { item: 1 } });
  assert.equal(res.statusCode, 200);
  assert.deepEqual(phone.services().map((r) => r.status), [401, 200]);
  assert.equal(phone.logins().length, 2);
  assert.notEqual(onPhone.token(), oldToken);
  assert.equal(phone.storage.get('wxlogin_token'), onPhone.token());
});

test('a second 401 is answered as it is, without a loop', guard, async () => {
  const phone = device(server, { user: 'erin', stripAuthorization: true }); // a gateway that loses the header
  const client = createClient({ endpoint: server.endpoint, wx: phone.wx });
  const res = await client.request({ url: server.base + '/auth/verify' });
  assert.equal(res.statusCode, 401);
  assert.equal(phone.services().length, 2, 'one retry');
  assert.equal(phone.logins().length, 2, 'one login, then one more after the 401');
});

test('a service that cannot be reached is NETWORK_ERROR, naming it', guard, async () => {
  const phone = device(server, { user: 'frank' });
  const client = createClient({ endpoint: server.endpoint, wx: phone.wx });
  await client.query(documents.Me);
  await assert.rejects(client.request({ url: 'http://127.0.0.1:1/orders' }), (err) => {
    assert.equal(err.code, 'NETWORK_ERROR');
    assert.equal(err.endpoint, 'http://127.0.0.1:1/orders');
    return true;
  });
  assert.ok(client.token(), 'the token is kept');
  await assert.rejects(client.request({}), /needs \{ url/);
});
