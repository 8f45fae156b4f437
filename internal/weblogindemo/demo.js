// The web login demo (dev mode's GET /weblogin): starts a web login, shows its
// mini-program code, follows it over Server-Sent Events (or, when the stream fails, by
// asking once a second) and, once it is confirmed, logs in with the session it hands
// over. The panel below plays the phone, which dev mode has not.
'use strict';

const endpoint = '/graphql';

// The documents of clients/documents (StartWebLogin, WatchWebLogin, WebLoginStatus, Me)
// and the dev login. The session comes in one answer only, so each status asks for it.
const status = 'state expiresAt session { token expiresAt user { id openid } }';
const documents = {
  start: 'mutation StartWebLogin { startWebLogin { id secret expiresAt image } }',
  watch: `subscription WatchWebLogin($id: ID!, $secret: String!) { webLogin(id: $id, secret: $secret) { ${status} } }`,
  poll: `query WebLoginStatus($id: ID!, $secret: String!) { webLogin(id: $id, secret: $secret) { ${status} } }`,
  me: 'query Me { me { id openid } }',
  login: 'mutation Login($code: String!) { login(code: $code) { token } }',
  phone: (step) => `mutation ($id: ID!) { ${step}(id: $id) { id state userAgent ip } }`,
};

const $ = (id) => document.getElementById(id);
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// graphql posts one document and resolves with its data; it rejects with the first
// error's message, which the server writes for people.
async function graphql(query, variables = {}, token = null) {
  const headers = { 'Content-Type': 'application/json', Accept: 'application/graphql-response+json, application/json' };
  if (token) headers.Authorization = `Bearer ${token}`;
  const res = await fetch(endpoint, { method: 'POST', headers, body: JSON.stringify({ query, variables }) });
  let body;
  try {
    body = await res.json();
  } catch {
    throw new Error(`The server answered HTTP ${res.status}, not GraphQL.`);
  }
  if (body.errors?.length) throw new Error(body.errors[0].message);
  return body.data;
}

// ---- The web page's part.

const says = {
  WAITING: 'Scan with WeChat',
  SCANNED: 'Confirm on your phone',
  CONFIRMED: 'Logging in…',
  CANCELLED: 'Cancelled',
  EXPIRED: 'Expired — get a new code',
};
const ended = (st) => st.state === 'CONFIRMED' || st.state === 'CANCELLED' || st.state === 'EXPIRED';

let attempt = null; // the web login shown: { id, secret, stop }
let session = null; // the web session, in memory only: { token, openid }

// show puts the page in a state (a WebLoginState, LOGGED_IN or ERROR; "" while starting).
function show(state, text) {
  $('login').dataset.state = state;
  $('status').textContent = text;
  $('code').hidden = !(state === 'WAITING' || state === 'SCANNED');
  $('again').hidden = !(state === 'CANCELLED' || state === 'EXPIRED' || state === 'ERROR' || state === 'LOGGED_IN');
  $('who').textContent = state === 'LOGGED_IN' ? `Logged in as ${session.openid}` : '';
}

async function start() {
  attempt?.stop.abort(); // the stream of the one shown before
  const a = { stop: new AbortController() };
  attempt = a;
  session = null;
  $('login').dataset.attempt = '';
  $('attempt').textContent = '…';
  $('phone-status').textContent = '';
  show('', 'Getting a code…');
  try {
    const { startWebLogin: s } = await graphql(documents.start);
    if (a !== attempt) return;
    Object.assign(a, { id: s.id, secret: s.secret });
    $('code').src = s.image;
    $('attempt').textContent = s.id;
    $('login').dataset.attempt = s.id;
    show('WAITING', says.WAITING);
    const st = await follow(a);
    if (a !== attempt || st.state !== 'CONFIRMED') return;
    if (!st.session) throw new Error('Confirmed, but this page missed its session: start again.');
    const { me } = await graphql(documents.me, {}, st.session.token);
    session = { token: st.session.token, openid: me.openid };
    show('LOGGED_IN', ''); // #who says it
  } catch (err) {
    if (a === attempt) show('ERROR', err.message);
  }
}

// follow shows each status of the attempt and resolves with the last: from the
// subscription, or, when the stream cannot be opened or breaks, by asking once a
// second.
async function follow(a) {
  let st = null;
  try {
    for await (st of watch(a)) {
      if (a !== attempt) return st;
      show(st.state, says[st.state]);
      if (ended(st)) return st;
    }
  } catch (err) {
    if (a.stop.signal.aborted) return st;
    console.warn(`web login: the stream failed (${err.message}); asking once a second instead`);
  }
  while (a === attempt) {
    ({ webLogin: st } = await graphql(documents.poll, { id: a.id, secret: a.secret }));
    if (a !== attempt) break;
    show(st.state, says[st.state]);
    if (ended(st)) break;
    await sleep(1000);
  }
  return st;
}

// watch yields each status the subscription sends, over graphql-sse's distinct
// connections mode: a POST answered with a stream of "event: next" (one result each)
// ending with "event: complete". It throws when the stream cannot be had, carries an
// error, or breaks.
async function* watch(a) {
  const res = await fetch(endpoint, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', Accept: 'text/event-stream' },
    body: JSON.stringify({ query: documents.watch, variables: { id: a.id, secret: a.secret } }),
    signal: a.stop.signal,
  });
  if (!res.ok || !(res.headers.get('Content-Type') ?? '').startsWith('text/event-stream')) {
    throw new Error(`the subscription was answered HTTP ${res.status}`);
  }
  const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
  try {
    let buffered = '';
    for (;;) {
      const { value, done } = await reader.read();
      if (done) throw new Error('the stream ended before the web login did');
      buffered += value;
      let end;
      while ((end = buffered.indexOf('\n\n')) >= 0) {
        const event = parseEvent(buffered.slice(0, end));
        buffered = buffered.slice(end + 2);
        if (event.type === 'complete') return;
        if (event.type !== 'next') continue;
        const result = JSON.parse(event.data);
        if (result.errors?.length) throw new Error(result.errors[0].message);
        yield result.data.webLogin;
      }
    }
  } finally {
    reader.cancel().catch(() => {}); // a stream left early is closed
  }
}

// parseEvent reads one Server-Sent Event; lines starting with ":" are comments (the
// server's keep-alive).
function parseEvent(block) {
  let type = 'message';
  const data = [];
  for (const line of block.split('\n')) {
    const colon = line.indexOf(':');
    if (colon === 0) continue;
    const field = colon < 0 ? line : line.slice(0, colon);
    const value = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '');
    if (field === 'event') type = value;
    if (field === 'data') data.push(value);
  }
  return { type, data: data.join('\n') };
}

// ---- The phone's part, for dev mode: what the mini-program's confirm page does
// (scanWebLogin, confirmWebLogin, cancelWebLogin), as the dev user named.

const phoneTokens = new Map(); // dev user → their mini-program session's token

async function phone(step) {
  const name = $('phone-user').value.trim() || 'alice';
  const out = $('phone-status');
  if (!attempt?.id) {
    out.textContent = 'There is no web login yet.';
    return;
  }
  try {
    if (!phoneTokens.has(name)) {
      const { login } = await graphql(documents.login, { code: `dev-${name}` });
      phoneTokens.set(name, login.token);
    }
    const r = (await graphql(documents.phone(step), { id: attempt.id }, phoneTokens.get(name)))[step];
    out.textContent = `${name}: ${r.state}. Asked by ${r.userAgent ?? 'an unknown browser'} from ${r.ip ?? 'an unknown address'}.`;
  } catch (err) {
    phoneTokens.delete(name); // a fresh login next time, should the session be what failed
    out.textContent = `${name}: ${err.message}`;
  }
}

$('again').addEventListener('click', start);
$('phone-scan').addEventListener('click', () => phone('scanWebLogin'));
$('phone-confirm').addEventListener('click', () => phone('confirmWebLogin'));
$('phone-cancel').addEventListener('click', () => phone('cancelWebLogin'));
start();
