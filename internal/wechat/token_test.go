package wechat_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/wxlogin/wxlogin/internal/capture"
	"github.com/wxlogin/wxlogin/internal/wechat"
	"github.com/wxlogin/wxlogin/internal/wechat/fakewechat"
)

// TestTokenErrcodes: the access-token errcodes each map to what the caller must do.
// 40014 (a malformed token) is refreshed like 40001 and 42001; 40164 (this server's IP
// is not allowed) is a configuration error no refresh helps; 45009 past the daily cap of
// forced refreshes is the daily quota, not an unexpected error.
func TestTokenErrcodes(t *testing.T) {
	clk := newClock()
	logs := &capture.Buffer{}
	e := newEnvWithFake(t, logs, func(o *fakewechat.Options) { o.Now = clk.Now }, nil)
	ctx := context.Background()
	tok := mustToken(t, e, false)

	e.fake.RejectAccessTokens(40014, 1)
	err := e.client.CheckSessionKey(ctx, tok.Token, "o-nobody", "AAAAAAAAAAAAAAAAAAAAAA==")
	if !errors.Is(err, wechat.ErrAccessToken) || errcodeOf(err) != 40014 {
		t.Errorf("a malformed token: err = %v, want ErrAccessToken with errcode 40014", err)
	}

	e.fake.SetIPAllowList("203.0.113.7")
	_, err = e.client.StableToken(ctx, false)
	if !errors.Is(err, wechat.ErrIPNotAllowed) || errcodeOf(err) != 40164 || errors.Is(err, wechat.ErrAccessToken) || errors.Is(err, wechat.ErrConfig) {
		t.Errorf("from an address not allowed: err = %v, want ErrIPNotAllowed alone", err)
	}
	if !strings.Contains(err.Error(), "127.0.0.1") {
		t.Errorf("the error %q does not name the address WeChat saw", err)
	}
	e.fake.SetIPAllowList()

	for range 20 {
		mustToken(t, e, true)
		clk.Advance(30 * time.Second)
	}
	_, err = e.client.StableToken(ctx, true)
	if !errors.Is(err, wechat.ErrDailyQuota) || errcodeOf(err) != 45009 || errors.Is(err, wechat.ErrUnexpected) {
		t.Errorf("the 21st forced refresh of the day: err = %v, want ErrDailyQuota with errcode 45009", err)
	}
	if n := e.fake.CallsTo("stable_token"); n != 23 {
		t.Errorf("stable_token calls = %d, want 23: none retried", n)
	}
	checkNoLeak(t, "the log", logs.String(), testSecret, tok.Token)
}
