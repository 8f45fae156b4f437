// A server in allow-list mode runs only the manifest's documents: the SDK's login is
// one of them, byte for byte.
'use strict';

const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { createClient, documents } = require('../index.js');
const { startServer, device, codeOf, guard, setupGuard } = require('./harness.js');

let server;
before(async () => {
  server = await startServer({ WXLOGIN_PERSISTED_QUERIES: 'allowlist' });
}, setupGuard);
after(async () => {
  await server.stop();
}, guard);

test('the SDK logs in and runs the client documents on an allow-list server', guard, async () => {
  const phone = device(server, { user: 'mei' });
  const client = createClient({ endpoint: server.endpoint, wx: phone.wx });
  const { me } = await client.query(documents.Me);
  assert.ok(me.openid);
  assert.equal(phone.logins().length, 1);

  const manifest = JSON.parse(fs.readFileSync(path.join(__dirname, '..', '..', '..', 'internal', 'persisted', 'manifest.json'), 'utf8'));
  const login = manifest.operations.find((op) => op.name === 'Login');
  assert.equal(phone.logins()[0].query, login.body, "the login sent is the manifest's");

  assert.equal(await client.logout(), true);
});

test('a document outside the allow-list is refused, and not taken for an ended session', guard, async () => {
  const phone = device(server, { user: 'mei' });
  const client = createClient({ endpoint: server.endpoint, wx: phone.wx });
  const err = await client.query('query { me { id } }').then(() => assert.fail('resolved'), (e) => e);
  assert.equal(err.code, 'QUERY_NOT_ALLOWED');
  assert.equal(err.status, 403);
  assert.equal(phone.logins().length, 1);
  assert.deepEqual(phone.calls().map(codeOf), ['QUERY_NOT_ALLOWED']);
});
