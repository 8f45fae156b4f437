// wxlogin's mini-program SDK: a GraphQL client that logs in silently.
//
// Copy index.js and documents.js into the mini-program (the .d.ts files too for
// TypeScript) and:
//
//   const { createClient, documents } = require('./wxlogin/index.js');
//   const client = createClient({ endpoint: 'https://api.example.com/graphql' });
//   const { me } = await client.query(documents.Me);
//
// The first call logs in (wx.login, then the login mutation) and keeps the token with
// wx.setStorageSync; later calls and later launches reuse it. When the session has
// ended (UNAUTHENTICATED) it logs in again once and retries once. What it does on each
// error code is in the README's "Mini-program SDK" section.
//
// Plain ES2017 and CommonJS, no dependencies: the mini-program runtime has wx.* and
// nothing of Node's.
'use strict';

var documents = require('./documents.js');

// A code from wx.login is valid for 5 minutes. A login that failed with
// WECHAT_UNAVAILABLE is retried with the same code (the server's idempotency makes that
// safe, and the code was not spent) while it is younger than this; after, a fresh one.
var CODE_REUSE_MS = 4.5 * 60 * 1000;

// Waits before retrying WECHAT_UNAVAILABLE: about 1 s, 2 s, 4 s… (at most 8 s), each
// between half and all of that, so that many clients do not come back in step.
var BACKOFF_BASE_MS = 1000;
var BACKOFF_MAX_MS = 8000;

/**
 * createClient returns a client for the wxlogin server at options.endpoint (the full
 * URL of /graphql). See index.d.ts for every option.
 */
function createClient(options) {
  if (!options || typeof options.endpoint !== 'string' || options.endpoint === '') {
    throw new Error('wxlogin: createClient needs { endpoint: "https://…/graphql" }');
  }
  var endpoint = options.endpoint;
  var w = options.wx || (typeof wx !== 'undefined' ? wx : null);
  if (!w) {
    throw new Error('wxlogin: no wx object; this SDK runs in a WeChat mini-program');
  }
  var storageKey = options.storageKey || 'wxlogin_token';
  var retries = options.retries === undefined ? 2 : options.retries;
  var maxWait = options.maxWait === undefined ? 60 : options.maxWait;
  var sleep = options.sleep || function (ms) {
    return new Promise(function (resolve) { setTimeout(resolve, ms); });
  };
  var now = options.now || Date.now;

  var token = readToken();
  var inFlight = null; // the login under way, shared by every caller that needs one

  function readToken() {
    try {
      return w.getStorageSync(storageKey) || null;
    } catch (e) {
      return null; // storage unreadable: log in again rather than fail
    }
  }

  function keep(t) {
    token = t;
    try {
      if (t) {
        w.setStorageSync(storageKey, t);
      } else {
        w.removeStorageSync(storageKey);
      }
    } catch (e) {
      // Storage full or unavailable: the token still lives in memory for this launch.
    }
  }

  // post sends one request and resolves with the parsed answer; it rejects only when
  // there is no GraphQL answer at all (the network failed, or something that is not
  // GraphQL answered).
  function post(document, variables, bearer) {
    return new Promise(function (resolve, reject) {
      var header = {
        'Content-Type': 'application/json',
        Accept: 'application/graphql-response+json, application/json',
      };
      if (bearer) {
        header.Authorization = 'Bearer ' + bearer;
      }
      var req = {
        url: endpoint,
        method: 'POST',
        header: header,
        data: { query: document, variables: variables || {} },
        dataType: 'json',
        success: function (res) {
          var body = res.data;
          var requestId = headerValue(res.header, 'x-request-id');
          if (!body || typeof body !== 'object' || !(Array.isArray(body.errors) || 'data' in body)) {
            reject(clientError('BAD_RESPONSE',
              'The server at ' + endpoint + ' did not answer with GraphQL (HTTP ' + res.statusCode + ').',
              { status: res.statusCode, requestId: requestId }));
            return;
          }
          resolve({ status: res.statusCode, body: body, requestId: requestId });
        },
        fail: function (err) {
          reject(clientError('NETWORK_ERROR',
            'Could not reach ' + endpoint + ': ' + ((err && err.errMsg) || 'request failed') + '.',
            { wxError: err }));
        },
      };
      if (options.timeout) {
        req.timeout = options.timeout;
      }
      w.request(req);
    });
  }

  function clientError(code, message, extra) {
    var err = new Error(message);
    err.name = 'WxloginError';
    err.code = code;
    err.endpoint = endpoint;
    err.errors = [];
    for (var k in extra) {
      if (Object.prototype.hasOwnProperty.call(extra, k)) {
        err[k] = extra[k];
      }
    }
    return err;
  }

  // graphqlError turns an answer with errors into the Error the caller gets.
  function graphqlError(res) {
    var first = res.body.errors[0] || {};
    var ext = first.extensions || {};
    var err = clientError(errorCode(res) || 'INTERNAL', first.message || 'The request failed.', {
      errors: res.body.errors,
      data: res.body.data === undefined ? null : res.body.data,
      status: res.status,
      requestId: res.requestId,
    });
    if (typeof ext.retryAfter === 'number') {
      err.retryAfter = ext.retryAfter;
    }
    return err;
  }

  // wait is how long to wait before retrying an answer with this error code after
  // `attempt` retries, or -1 when it is not to be retried.
  function wait(res, attempt) {
    var code = errorCode(res);
    if (attempt >= retries) {
      return -1;
    }
    if (code === 'RATE_LIMITED') {
      var after = retryAfter(res);
      return after > maxWait ? -1 : after * 1000;
    }
    if (code === 'WECHAT_UNAVAILABLE') {
      var ceiling = Math.min(BACKOFF_MAX_MS, BACKOFF_BASE_MS * Math.pow(2, attempt));
      return Math.round(ceiling / 2 + Math.random() * ceiling / 2);
    }
    return -1;
  }

  // signIn is one login: wx.login, then the login mutation, with the retries each
  // error code calls for. It never sends a code that WeChat has refused.
  async function signIn() {
    var code = null;
    var codeAt = 0;
    var freshCodeTaken = false; // after INVALID_CODE, once
    var attempt = 0;
    for (;;) {
      if (code === null || now() - codeAt >= CODE_REUSE_MS) {
        code = await wxLogin();
        codeAt = now();
      }
      var variables = { code: code };
      if (options.appid) {
        variables.appid = options.appid;
      }
      var res = await post(documents.Login, variables, null);
      var errCode = errorCode(res);
      if (!errCode) {
        keep(res.body.data.login.token);
        return res.body.data.login;
      }
      if (errCode === 'INVALID_CODE' && !freshCodeTaken) {
        freshCodeTaken = true;
        code = null;
        continue;
      }
      var ms = wait(res, attempt);
      if (ms < 0) {
        throw graphqlError(res);
      }
      if (errCode === 'RATE_LIMITED') {
        // WeChat may have seen this code (its 45011), and the server keeps its refusal
        // of a code for a while: after the wait, a fresh code is the safe one.
        code = null;
      }
      attempt++;
      await sleep(ms);
    }
  }

  function wxLogin() {
    return new Promise(function (resolve, reject) {
      w.login({
        success: function (res) {
          if (res && res.code) {
            resolve(res.code);
          } else {
            reject(clientError('WX_LOGIN_FAILED', 'wx.login gave no code.', { wxError: res }));
          }
        },
        fail: function (err) {
          reject(clientError('WX_LOGIN_FAILED',
            'wx.login failed: ' + ((err && err.errMsg) || 'no reason given') + '.', { wxError: err }));
        },
      });
    });
  }

  // login logs in now, or joins the login already under way.
  function login() {
    if (!inFlight) {
      inFlight = signIn().then(function (payload) {
        inFlight = null;
        return payload;
      }, function (err) {
        inFlight = null;
        throw err;
      });
    }
    return inFlight;
  }

  async function session() {
    if (inFlight) {
      await inFlight;
    } else if (!token) {
      await login();
    }
    return token;
  }

  // run runs a document with the session, logging in first when there is none.
  async function run(document, variables) {
    var loggedInAgain = false;
    var attempt = 0;
    for (;;) {
      var bearer = await session();
      var res = await post(document, variables, bearer);
      var errCode = errorCode(res);
      if (!errCode) {
        return res.body.data;
      }
      if (errCode === 'UNAUTHENTICATED' && !loggedInAgain) {
        // The session ended (expired, revoked, evicted). Forget it unless another
        // caller has already replaced it, then log in again: once, and retry once.
        loggedInAgain = true;
        if (token === bearer) {
          keep(null);
        }
        continue;
      }
      var ms = wait(res, attempt);
      if (ms < 0) {
        throw graphqlError(res);
      }
      attempt++;
      await sleep(ms);
    }
  }

  // request is wx.request to another of the team's services, behind a gateway that
  // checks the token with wxlogin (/auth/verify): it carries the session's token,
  // logging in first when there is none, and a 401 (the session ended) logs in again,
  // once, and retries once, as UNAUTHENTICATED does for GraphQL. It resolves with
  // wx.request's answer ({ statusCode, data, header }) whatever the status, and rejects
  // only when the request could not be made (NETWORK_ERROR).
  async function request(req) {
    if (!req || typeof req.url !== 'string' || req.url === '') {
      throw new Error('wxlogin: request needs { url: "https://…" }, as wx.request does');
    }
    var loggedInAgain = false;
    for (;;) {
      var bearer = await session();
      var res = await send(req, bearer);
      if (res.statusCode === 401 && !loggedInAgain) {
        loggedInAgain = true;
        if (token === bearer) {
          keep(null);
        }
        continue;
      }
      return res;
    }
  }

  // send makes one wx.request with the token, in place of any Authorization the
  // caller's header has.
  function send(req, bearer) {
    return new Promise(function (resolve, reject) {
      var r = {};
      for (var k in req) {
        if (Object.prototype.hasOwnProperty.call(req, k) && k !== 'success' && k !== 'fail' && k !== 'complete') {
          r[k] = req[k];
        }
      }
      r.header = {};
      for (var h in req.header || {}) {
        if (Object.prototype.hasOwnProperty.call(req.header, h) && h.toLowerCase() !== 'authorization') {
          r.header[h] = req.header[h];
        }
      }
      r.header.Authorization = 'Bearer ' + bearer;
      if (options.timeout && r.timeout === undefined) {
        r.timeout = options.timeout;
      }
      r.success = resolve;
      r.fail = function (err) {
        reject(clientError('NETWORK_ERROR',
          'Could not reach ' + req.url + ': ' + ((err && err.errMsg) || 'request failed') + '.',
          { wxError: err, endpoint: req.url }));
      };
      w.request(r);
    });
  }

  // logout ends the session on the server and forgets it here. It resolves true when
  // the server ended it, false when there was none (or it had already ended). The
  // token is forgotten even when the server cannot be reached.
  async function logout() {
    if (inFlight) {
      await inFlight.catch(function () {});
    }
    var bearer = token;
    if (!bearer) {
      return false;
    }
    keep(null);
    var res = await post(documents.Logout, {}, bearer);
    var errCode = errorCode(res);
    if (errCode === 'UNAUTHENTICATED') {
      return false;
    }
    if (errCode) {
      throw graphqlError(res);
    }
    return res.body.data.logout === true;
  }

  // exportMyData resolves with everything the server holds about the user (myData).
  async function exportMyData() {
    var data = await run(documents.MyData, {});
    return data.myData;
  }

  // deleteAccount deletes the user's account on the server and forgets the token here.
  // The next call logs in again, as a new user.
  async function deleteAccount() {
    var data = await run(documents.DeleteAccount, {});
    keep(null);
    return data.deleteAccount === true;
  }

  // scanWebLogin opens the web login whose code the person scanned, marking it scanned
  // by this user, and resolves with who asked (the browser's User-Agent and address).
  // `scene` is the code's scene, or the options of the page's onLoad, where WeChat
  // passes it URI-encoded.
  async function scanWebLogin(scene) {
    var id = typeof scene === 'string' ? scene : launchScene(scene);
    if (!id) {
      // Checked here: a page opened from the recent list has no scene, and the person
      // needs to be told to scan, not what the server calls a malformed id.
      throw clientError('BAD_USER_INPUT',
        'No web login to confirm: open this page by scanning the code on the web page.', {});
    }
    var data = await run(documents.ScanWebLogin, { id: id });
    return data.scanWebLogin;
  }

  // confirmWebLogin logs the browser that asked in as this user.
  async function confirmWebLogin(id) {
    var data = await run(documents.ConfirmWebLogin, { id: id });
    return data.confirmWebLogin;
  }

  // cancelWebLogin refuses the web login: the browser is told, and logs in as nobody.
  async function cancelWebLogin(id) {
    var data = await run(documents.CancelWebLogin, { id: id });
    return data.cancelWebLogin;
  }

  return {
    query: run,
    mutate: run,
    request: request,
    exportMyData: exportMyData,
    deleteAccount: deleteAccount,
    scanWebLogin: scanWebLogin,
    confirmWebLogin: confirmWebLogin,
    cancelWebLogin: cancelWebLogin,
    login: login,
    logout: logout,
    token: function () { return token; },
  };
}

// errorCode is the code an answer failed with: UNAUTHENTICATED when any error has it
// (logging in again may fix the whole request), else the first error's; "" when there
// are no errors.
function errorCode(res) {
  var errors = res.body.errors;
  if (!errors || errors.length === 0) {
    return '';
  }
  var first = '';
  for (var i = 0; i < errors.length; i++) {
    var code = (errors[i] && errors[i].extensions && errors[i].extensions.code) || 'INTERNAL';
    if (code === 'UNAUTHENTICATED') {
      return code;
    }
    first = first || code;
  }
  return first;
}

// launchScene is the scene of a mini-program code, decoded, from the options WeChat
// opens a page with (onLoad's: options.scene) or the app (onLaunch's and
// wx.getLaunchOptionsSync's, whose own scene is a number saying how it was opened:
// options.query.scene); "" when there is none.
function launchScene(options) {
  var scene = options && options.scene;
  if (typeof scene !== 'string') {
    scene = options && options.query && options.query.scene;
  }
  if (typeof scene !== 'string') {
    return '';
  }
  try {
    return decodeURIComponent(scene);
  } catch (e) {
    return scene; // not URI-encoded after all (a lone %): the server says what it is
  }
}

function retryAfter(res) {
  var errors = res.body.errors || [];
  for (var i = 0; i < errors.length; i++) {
    var after = errors[i] && errors[i].extensions && errors[i].extensions.retryAfter;
    if (typeof after === 'number' && after >= 0) {
      return after;
    }
  }
  return 1;
}

// headerValue reads a response header whatever the case of its name: the platforms
// do not agree on it.
function headerValue(headers, name) {
  if (!headers) {
    return undefined;
  }
  for (var k in headers) {
    if (Object.prototype.hasOwnProperty.call(headers, k) && k.toLowerCase() === name) {
      return headers[k];
    }
  }
  return undefined;
}

module.exports = {
  createClient: createClient,
  documents: documents,
};
