// Shows who is logged in (the SDK logs in silently on the first query) and logs out.
const { documents } = require('../../wxlogin/index.js');

Page({
  data: { openid: '', error: '', loggedOut: false },

  onLoad() {
    this.load();
  },

  async load() {
    this.setData({ error: '', loggedOut: false });
    try {
      const { me } = await getApp().client.query(documents.Me);
      this.setData({ openid: me.openid });
    } catch (err) {
      this.setData({ error: err.code + ': ' + err.message });
    }
  },

  async logout() {
    try {
      await getApp().client.logout();
      this.setData({ openid: '', loggedOut: true });
    } catch (err) {
      this.setData({ openid: '', error: err.code + ': ' + err.message });
    }
  },
});
