// What the SDK's tests run against: the real wxlogin binary in dev mode (built with
// `go build` once per test file), and a simulated mini-program `wx`: wx.login gets a real
// code from the server's fake WeChat, wx.request is fetch, storage is a Map.
'use strict';

const { execFileSync, spawn } = require('node:child_process');
const { once } = require('node:events');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const root = path.resolve(__dirname, '..', '..', '..');
const loginDocument = /^\s*mutation Login\b/;

// Guards, so that a client that loops fails the run instead of hanging it. They are no
// timing assertions: a test passes in well under a second; the first `go build` of a
// cold cache may take minutes.
const guard = { timeout: 2 * 60 * 1000 };
const setupGuard = { timeout: 10 * 60 * 1000 };

let binary = null;

function buildServer() {
  if (binary === null) {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'wxlogin-sdk-bin-'));
    process.on('exit', () => fs.rmSync(dir, { recursive: true, force: true }));
    binary = path.join(dir, 'wxlogin');
    execFileSync('go', ['build', '-o', binary, '.'], { cwd: root, stdio: ['ignore', 'inherit', 'inherit'] });
  }
  return binary;
}

/**
 * startServer runs wxlogin in dev mode on a free port, in a scratch working folder (so
 * a fresh SQLite database), with these settings on top of none: whatever WXLOGIN_ or
 * WECHAT_ variables the test process has are left out.
 */
async function startServer(settings = {}) {
  const bin = buildServer();
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'wxlogin-sdk-run-'));
  const env = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (!k.startsWith('WXLOGIN_') && !k.startsWith('WECHAT_')) {
      env[k] = v;
    }
  }
  Object.assign(env, { WXLOGIN_ADDR: '127.0.0.1:0' }, settings);
  const child = spawn(bin, [], { cwd: work, env, stdio: ['ignore', 'ignore', 'pipe'] });
  const killOnExit = () => child.kill('SIGKILL');
  process.on('exit', killOnExit);
  let log = '';
  child.stderr.setEncoding('utf8');
  const addr = await new Promise((resolve, reject) => {
    const guard = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error('the server did not say where it listens:\n' + log));
    }, 60000);
    child.stderr.on('data', (chunk) => {
      log = (log + chunk).slice(-100000);
      const m = /wxlogin serving.*listen=(127\.0\.0\.1:\d+)/.exec(log);
      if (m) {
        clearTimeout(guard);
        resolve(m[1]);
      }
    });
    child.on('exit', (code) => {
      clearTimeout(guard);
      reject(new Error(`the server exited (${code}) before it listened:\n${log}`));
    });
  });
  let stopped = false;
  return {
    base: 'http://' + addr,
    endpoint: 'http://' + addr + '/graphql',
    log: () => log,
    async stop() {
      if (stopped) {
        return;
      }
      stopped = true;
      const exited = once(child, 'exit');
      child.kill('SIGTERM');
      await exited;
      process.off('exit', killOnExit);
      fs.rmSync(work, { recursive: true, force: true });
    },
  };
}

/**
 * device simulates the `wx` of one phone running the mini-program, logged in to WeChat
 * as `user`. `codes` are handed out by wx.login before any real one (a fault code such
 * as "fault-busy", or a code WeChat never issued). `sleep` records the waits the SDK
 * asks for, and with `clock` set each wait moves that clock on instead of waiting.
 * `hosts` maps an origin the code asks for to the one that serves it, as a proxy would.
 */
function device(server, { user = 'alice', codes = [], stripAuthorization = false, clock = null, hosts = {} } = {}) {
  const storage = new Map();
  const scripted = [...codes];
  const seen = { wxLogin: 0, requests: [], waits: [] };
  const wx = {
    login({ success, fail }) {
      seen.wxLogin++;
      const next = scripted.length > 0
        ? Promise.resolve(scripted.shift())
        : fetch(`${server.base}/dev/fake/wx.login?user=${encodeURIComponent(user)}`)
          .then((res) => res.json())
          .then((body) => body.code);
      next.then(
        (code) => success({ code, errMsg: 'login:ok' }),
        (err) => fail({ errMsg: 'login:fail ' + err.message }),
      );
    },
    request({ url, method, header, data, dataType, success, fail }) {
      const headers = { ...header };
      if (stripAuthorization) {
        delete headers.Authorization;
      }
      const entry = { url, query: data && data.query, variables: data && data.variables, authorization: header.Authorization };
      seen.requests.push(entry);
      const origin = new URL(url).origin;
      const target = hosts[origin] ? hosts[origin] + url.slice(origin.length) : url;
      const body = data === undefined || method === 'GET' || method === 'HEAD' ? undefined : JSON.stringify(data);
      fetch(target, { method: method || 'GET', headers, body }).then(async (res) => {
        const text = await res.text();
        let body = text;
        if (dataType === 'json') {
          try {
            body = JSON.parse(text);
          } catch {
            // wx.request hands over the text when it is not JSON
          }
        }
        const responseHeaders = {};
        res.headers.forEach((value, name) => {
          responseHeaders[name] = value;
        });
        Object.assign(entry, { status: res.status, body, requestId: res.headers.get('x-request-id') });
        success({ statusCode: res.status, header: responseHeaders, data: body, errMsg: 'request:ok' });
      }, (err) => {
        entry.failed = true;
        fail({ errMsg: 'request:fail ' + (err.cause ? err.cause.code || err.cause.message : err.message) });
      });
      return { abort() {} };
    },
    getStorageSync: (key) => (storage.has(key) ? storage.get(key) : ''),
    setStorageSync: (key, value) => {
      storage.set(key, value);
    },
    removeStorageSync: (key) => {
      storage.delete(key);
    },
  };
  const sleep = async (ms) => {
    seen.waits.push(ms);
    if (clock) {
      clock.now += ms;
    }
  };
  return {
    wx,
    storage,
    seen,
    sleep,
    /** The login mutations this device sent, in order. */
    logins: () => seen.requests.filter((r) => r.query && loginDocument.test(r.query)),
    /** The other GraphQL requests it sent. */
    calls: () => seen.requests.filter((r) => r.query && !loginDocument.test(r.query)),
    /** The requests it sent to other services than wxlogin's GraphQL. */
    services: () => seen.requests.filter((r) => !r.query),
  };
}

/** codeOf is the first error code of an answer the shim saw, or "" for none. */
function codeOf(request) {
  const errors = (request.body && request.body.errors) || [];
  return errors.length > 0 ? errors[0].extensions.code : '';
}

module.exports = { buildServer, startServer, device, codeOf, guard, setupGuard };
