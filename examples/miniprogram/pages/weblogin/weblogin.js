// The page a web login's code opens (WXLOGIN_WEB_LOGIN_PAGE): says which browser asks
// to log in as this user, and confirms or cancels. WeChat passes the code's scene in
// onLoad's options; the SDK logs in silently first.
Page({
  // step: '' (loading), 'ask', 'confirmed' or 'cancelled'.
  data: { step: '', userAgent: '', ip: '', asked: '', busy: false, error: '', canRetry: false },

  onLoad(options) {
    this.scan(options);
  },

  scan(options) {
    this.launch = options; // for "Try again"
    return this.run(async () => {
      const request = await getApp().client.scanWebLogin(options);
      this.id = request.id;
      this.setData({
        step: 'ask',
        userAgent: request.userAgent || 'an unknown browser',
        ip: request.ip || 'an unknown address',
        asked: clock(request.createdAt),
      });
    });
  },

  confirm() {
    return this.run(async () => {
      await getApp().client.confirmWebLogin(this.id);
      this.setData({ step: 'confirmed' });
    });
  },

  cancel() {
    return this.run(async () => {
      await getApp().client.cancelWebLogin(this.id);
      this.setData({ step: 'cancelled' });
    });
  },

  retry() {
    return this.scan(this.launch);
  },

  // run makes one call to the server with the buttons off. The server's BAD_USER_INPUT
  // messages are for the person (expired, cancelled, used, another's code), and trying
  // again will not change them; any other error may pass.
  async run(call) {
    this.setData({ busy: true, error: '', canRetry: false });
    try {
      await call();
    } catch (err) {
      const forPerson = err.code === 'BAD_USER_INPUT';
      this.setData({ error: forPerson ? err.message : err.code + ': ' + err.message, canRetry: !forPerson });
    }
    this.setData({ busy: false });
  },
});

// clock is the local time of an RFC 3339 instant, as HH:MM:SS.
function clock(iso) {
  const t = new Date(iso);
  const two = (n) => (n < 10 ? '0' : '') + n;
  return two(t.getHours()) + ':' + two(t.getMinutes()) + ':' + two(t.getSeconds());
}
