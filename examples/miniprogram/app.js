// The example mini-program: one wxlogin client for the whole app, shared by its pages.
const { createClient } = require('./wxlogin/index.js');

// Where wxlogin serves GraphQL. `go run .` on this computer: http://localhost:8080/graphql
// (project.config.json turns off DevTools' check of request domains for that). A real
// server: its https URL, listed in the mini-program's request domains.
const ENDPOINT = 'http://localhost:8080/graphql';

// Dev mode's fake WeChat knows nothing of the codes the real wx.login gives; its codes
// dev-<name> log in as a dev user. Set DEV_USER to '' against a real server.
const DEV_USER = 'alice';
const devWx = {
  login: (options) => options.success({ code: 'dev-' + DEV_USER }),
  request: (options) => wx.request(options),
  getStorageSync: (key) => wx.getStorageSync(key),
  setStorageSync: (key, value) => wx.setStorageSync(key, value),
  removeStorageSync: (key) => wx.removeStorageSync(key),
};

App({
  client: createClient({ endpoint: ENDPOINT, wx: DEV_USER ? devWx : wx }),
});
