// When there is no GraphQL answer: a server that is down, something else answering.
'use strict';

const { test, before } = require('node:test');
const assert = require('node:assert/strict');
const http = require('node:http');
const { once } = require('node:events');
const { createClient, documents } = require('../index.js');
const { buildServer, startServer, device, guard, setupGuard } = require('./harness.js');

before(() => buildServer(), setupGuard);

function rejection(promise) {
  return promise.then(() => assert.fail('resolved'), (e) => e);
}

test('a server that is down gives NETWORK_ERROR once, without retrying', guard, async () => {
  const server = await startServer();
  const phone = device(server, { user: 'kai' });
  const client = createClient({ endpoint: server.endpoint, wx: phone.wx, sleep: phone.sleep });
  await client.query(documents.Me);
  await server.stop();

  // Logged in already: the one request fails.
  let sent = phone.seen.requests.length;
  const err = await rejection(client.query(documents.Me));
  assert.equal(err.code, 'NETWORK_ERROR');
  assert.equal(err.endpoint, server.endpoint);
  assert.match(err.message, new RegExp('Could not reach ' + server.endpoint));
  assert.ok(err.wxError.errMsg.startsWith('request:fail'));
  assert.equal(phone.seen.requests.length, sent + 1);
  assert.equal(phone.seen.wxLogin, 1);
  assert.deepEqual(phone.seen.waits, []);
  assert.ok(client.token(), 'the session is kept for when the server is back');

  // Not logged in yet: wx.login works (it is WeChat's), the login request fails.
  const other = device(server, { codes: ['dev-kai'] });
  const fresh = createClient({ endpoint: server.endpoint, wx: other.wx, sleep: other.sleep });
  const err2 = await rejection(fresh.query(documents.Me));
  assert.equal(err2.code, 'NETWORK_ERROR');
  assert.equal(other.seen.wxLogin, 1);
  assert.equal(other.seen.requests.length, 1);
  assert.deepEqual(other.seen.waits, []);

  // Each call is one attempt: nothing goes on in the background.
  sent = phone.seen.requests.length;
  await rejection(client.query(documents.Me));
  await new Promise((resolve) => setImmediate(resolve));
  assert.equal(phone.seen.requests.length, sent + 1);
});

test('something that is not GraphQL answering gives BAD_RESPONSE with its status', guard, async () => {
  const gateway = http.createServer((req, res) => {
    res.writeHead(502, { 'Content-Type': 'text/html' });
    res.end('<html><body>502 Bad Gateway</body></html>');
  });
  gateway.listen(0, '127.0.0.1');
  await once(gateway, 'listening');
  try {
    const endpoint = `http://127.0.0.1:${gateway.address().port}/graphql`;
    const phone = device({ base: endpoint }, { codes: ['dev-lena'] });
    const err = await rejection(createClient({ endpoint, wx: phone.wx, sleep: phone.sleep }).query(documents.Me));
    assert.equal(err.code, 'BAD_RESPONSE');
    assert.equal(err.status, 502);
    assert.equal(err.endpoint, endpoint);
    assert.equal(phone.seen.requests.length, 1);
    assert.deepEqual(phone.seen.waits, []);
  } finally {
    gateway.close();
  }
});
