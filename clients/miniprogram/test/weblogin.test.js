// The SDK's part of a web login: a browser starts one with plain fetch, the simulated
// mini-program scans, confirms or cancels it with scanWebLogin, confirmWebLogin and
// cancelWebLogin, and the browser's poll gets a session of the phone's user.
'use strict';

const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { startServer, device, guard, setupGuard } = require('./harness.js');
const { createClient } = require('../index.js');

let server;
before(async () => {
  server = await startServer();
}, setupGuard);
after(() => server.stop(), guard);

const userAgent = 'Mozilla/5.0 (a browser in the SDK tests)';

async function graphql(srv, query, variables, token) {
  const headers = { 'Content-Type': 'application/json', 'User-Agent': userAgent };
  if (token) {
    headers.Authorization = 'Bearer ' + token;
  }
  const res = await fetch(srv.endpoint, { method: 'POST', headers, body: JSON.stringify({ query, variables }) });
  return res.json();
}

/** startWebLogin is the browser: it starts a web login and can ask where it stands. */
async function startWebLogin(srv = server) {
  const { data, errors } = await graphql(srv, 'mutation { startWebLogin { id secret expiresAt } }');
  assert.equal(errors, undefined);
  const { id, secret, expiresAt } = data.startWebLogin;
  return {
    id,
    expiresAt,
    async poll() {
      const answer = await graphql(srv,
        'query ($id: ID!, $secret: String!) { webLogin(id: $id, secret: $secret) { state session { token } } }',
        { id, secret });
      assert.equal(answer.errors, undefined);
      return answer.data.webLogin;
    },
  };
}

function phone(user = 'alice', srv = server) {
  const d = device(srv, { user });
  return { device: d, client: createClient({ endpoint: srv.endpoint, wx: d.wx, sleep: d.sleep }) };
}

const openidOf = (d) => d.logins()[0].body.data.login.user.openid;

test('scan and confirm log in silently, and the browser gets a session of the same user', guard, async () => {
  const browser = await startWebLogin();
  const { device: d, client } = phone();

  // onLoad's options, as WeChat passes them: the scene URI-encoded.
  const asked = await client.scanWebLogin({ scene: encodeURIComponent(browser.id) });
  assert.equal(d.logins().length, 1, 'logged in first, silently');
  assert.equal(asked.id, browser.id);
  assert.equal(asked.state, 'SCANNED');
  assert.equal(asked.userAgent, userAgent);
  assert.equal(asked.ip, '127.0.0.1');
  assert.ok(Date.parse(asked.createdAt) < Date.parse(asked.expiresAt));
  assert.equal(asked.expiresAt.slice(0, 19), browser.expiresAt.slice(0, 19));
  assert.equal((await browser.poll()).state, 'SCANNED');

  const confirmed = await client.confirmWebLogin(asked.id);
  assert.equal(confirmed.state, 'CONFIRMED');
  assert.equal(d.logins().length, 1, 'one session for all three calls');

  const status = await browser.poll();
  assert.equal(status.state, 'CONFIRMED');
  const me = await graphql(server, '{ me { openid } }', {}, status.session.token);
  assert.equal(me.data.me.openid, openidOf(d));
  assert.equal((await browser.poll()).session, null, 'the session is handed over once');

  await assert.rejects(client.confirmWebLogin(asked.id), {
    name: 'WxloginError', code: 'BAD_USER_INPUT',
    message: 'This web login was confirmed already: a code logs one browser in once.',
  });
});

test('scanWebLogin takes the scene itself or the app\'s launch options; cancel tells the browser', guard, async () => {
  const { client } = phone();
  const first = await startWebLogin();
  assert.equal((await client.scanWebLogin(first.id)).state, 'SCANNED');
  // onLaunch's and wx.getLaunchOptionsSync's options: their own scene is a number.
  const second = await startWebLogin();
  assert.equal((await client.scanWebLogin({ scene: 1047, query: { scene: second.id } })).id, second.id);

  const cancelled = await client.cancelWebLogin(first.id);
  assert.equal(cancelled.state, 'CANCELLED');
  assert.deepEqual(await first.poll(), { state: 'CANCELLED', session: null });
  await assert.rejects(client.confirmWebLogin(first.id), {
    code: 'BAD_USER_INPUT', message: 'This web login was cancelled: refresh the web page for a new code.',
  });
  // Cancelling without scanning first works as well.
  assert.equal((await client.cancelWebLogin(second.id)).state, 'CANCELLED');
});

test('an unknown, malformed, missing or another user\'s code is BAD_USER_INPUT with a message for the person', guard, async () => {
  const { device: d, client } = phone();
  await assert.rejects(client.scanWebLogin('0123456789abcdef0123456789abcdef'), (err) => {
    assert.equal(err.name, 'WxloginError');
    assert.equal(err.code, 'BAD_USER_INPUT');
    assert.equal(err.message, 'There is no such web login: scan the code on the web page again.');
    assert.ok(err.requestId, 'with the request id to quote');
    return true;
  });
  await assert.rejects(client.confirmWebLogin('not-a-scene'), { code: 'BAD_USER_INPUT', message: /malformed/ });

  const before = d.seen.requests.length;
  for (const options of [{}, undefined, { scene: 1001 }]) {
    await assert.rejects(client.scanWebLogin(options), {
      code: 'BAD_USER_INPUT', message: 'No web login to confirm: open this page by scanning the code on the web page.',
    });
  }
  assert.equal(d.seen.requests.length, before, 'no request without a scene');

  const browser = await startWebLogin();
  await client.scanWebLogin(browser.id);
  const bob = phone('bob').client;
  await assert.rejects(bob.confirmWebLogin(browser.id), {
    code: 'BAD_USER_INPUT', message: 'Another WeChat user scanned this code: only they can confirm or cancel it.',
  });
});

test('an expired code is BAD_USER_INPUT saying so', guard, async () => {
  const shortLived = await startServer({ WXLOGIN_WEB_LOGIN_TTL: '5s' }); // the shortest allowed
  try {
    const browser = await startWebLogin(shortLived);
    const { client } = phone('alice', shortLived);
    await client.login();
    await new Promise((resolve) => setTimeout(resolve, Date.parse(browser.expiresAt) - Date.now() + 100));
    await assert.rejects(client.scanWebLogin(browser.id), {
      code: 'BAD_USER_INPUT', message: 'This web login has expired: refresh the web page for a new code and scan it again.',
    });
    assert.equal((await browser.poll()).state, 'EXPIRED');
  } finally {
    await shortLived.stop();
  }
});
