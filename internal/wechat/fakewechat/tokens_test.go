package fakewechat_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

// TestStableTokenOverlap walks the clock through three tokens' lives: expires_in is
// never under 300, a new token comes only in the old one's last 5 minutes, and the old
// one keeps working to its end.
func TestStableTokenOverlap(t *testing.T) {
	f := newFixture(t)
	const step = 20 * time.Second
	cur := f.stableToken(t, false)
	curEnds := f.clock.Now().Add(time.Duration(cur.ExpiresIn) * time.Second)
	var old string
	var oldEnds time.Time
	changes := 0
	for range 3 * 7200 / int(step/time.Second) {
		f.clock.Advance(step)
		now := f.clock.Now()
		if old != "" {
			switch code := f.tokenErrcode(t, old); {
			case now.Before(oldEnds) && code != tokenOK:
				t.Fatalf("the previous token, %s before its end: errcode %d, want it still working", oldEnds.Sub(now), code)
			case !now.Before(oldEnds) && code != 42001:
				t.Fatalf("the previous token past its end: errcode %d, want 42001", code)
			}
		}
		r := f.stableToken(t, false)
		if r.Errcode != 0 || r.ExpiresIn < 300 {
			t.Fatalf("stable_token %s before the token's end: %s, want expires_in of 300 or more", curEnds.Sub(now), r.raw)
		}
		if r.AccessToken == cur.AccessToken {
			continue
		}
		changes++
		if left := curEnds.Sub(now); left >= 5*time.Minute || left <= 0 {
			t.Fatalf("a new token with %s left on the current one, want one only in its last 5 minutes", left)
		}
		if f.tokenErrcode(t, r.AccessToken) != tokenOK {
			t.Fatal("the new token does not work")
		}
		old, oldEnds = cur.AccessToken, curEnds
		cur, curEnds = r, now.Add(time.Duration(r.ExpiresIn)*time.Second)
	}
	if changes < 2 {
		t.Errorf("%d new tokens over three tokens' lives, want 2 or more", changes)
	}
	if n := f.fake.ForceRefreshCalls(); n != 0 {
		t.Errorf("ForceRefreshCalls() = %d without a forced refresh", n)
	}
}

// TestForcedRefreshSpacing: a forced refresh replaces the token at once, but one sooner
// than 30 s after the last gives the current token back.
func TestForcedRefreshSpacing(t *testing.T) {
	f := newFixture(t)
	first := f.stableToken(t, false)
	forced := f.stableToken(t, true)
	if forced.AccessToken == first.AccessToken || forced.ExpiresIn != 7200 {
		t.Fatalf("forced refresh: %s, want a new token for 7200 s", forced.raw)
	}
	if code := f.tokenErrcode(t, first.AccessToken); code != 40001 {
		t.Errorf("the token a forced refresh replaced: errcode %d, want 40001", code)
	}
	since := time.Duration(0)
	for _, wait := range []time.Duration{0, 29 * time.Second} {
		f.clock.Advance(wait)
		since += wait
		again := f.stableToken(t, true)
		if again.Errcode != 0 || again.AccessToken != forced.AccessToken {
			t.Fatalf("forced refresh %s after the last: %s, want the current token back", since, again.raw)
		}
		if code := f.tokenErrcode(t, forced.AccessToken); code != tokenOK {
			t.Errorf("the current token after a forced refresh too soon: errcode %d, want it working", code)
		}
	}
	f.clock.Advance(time.Second) // 30 s after the last refresh
	later := f.stableToken(t, true)
	if later.AccessToken == forced.AccessToken {
		t.Error("a forced refresh 30 s after the last did not refresh")
	}
	if n := f.fake.ForceRefreshCalls(); n != 4 {
		t.Errorf("ForceRefreshCalls() = %d, want 4", n)
	}
}

// TestForcedRefreshDailyCap: 20 forced refreshes a day; the 21st is errcode 45009, the
// current token keeps working, and the next day (midnight in Beijing) they work again.
func TestForcedRefreshDailyCap(t *testing.T) {
	f := newFixture(t) // 11:04 in Beijing
	var last reply
	for i := range 20 {
		r := f.stableToken(t, true)
		if r.Errcode != 0 || r.AccessToken == last.AccessToken {
			t.Fatalf("forced refresh %d: %s, want a new token", i+1, r.raw)
		}
		last = r
		f.clock.Advance(30 * time.Second)
	}
	capped := f.stableToken(t, true)
	if capped.Errcode != 45009 || !strings.HasPrefix(capped.Errmsg, "reach max api daily quota limit") || capped.AccessToken != "" {
		t.Fatalf("the 21st forced refresh of the day: %s, want errcode 45009", capped.raw)
	}
	if code := f.tokenErrcode(t, last.AccessToken); code != tokenOK {
		t.Errorf("the current token past the cap: errcode %d, want it working", code)
	}
	if r := f.stableToken(t, false); r.AccessToken != last.AccessToken {
		t.Errorf("a normal call past the cap: %s, want the current token", r.raw)
	}
	f.clock.Advance(12*time.Hour + 30*time.Minute) // 23:44 in Beijing: the same day
	if r := f.stableToken(t, true); r.Errcode != 45009 {
		t.Errorf("later the same day: %s, want 45009", r.raw)
	}
	f.clock.Advance(20 * time.Minute) // past midnight in Beijing
	if r := f.stableToken(t, true); r.Errcode != 0 || r.AccessToken == last.AccessToken {
		t.Errorf("the next day: %s, want a new token", r.raw)
	}
}

func TestRejectAccessTokens(t *testing.T) {
	f := newFixture(t)
	tok := f.stableToken(t, false).AccessToken
	f.fake.RejectAccessTokens(40014, 1)
	if code := f.tokenErrcode(t, tok); code != 40014 {
		t.Errorf("first use: errcode %d, want 40014", code)
	}
	if code := f.tokenErrcode(t, tok); code != tokenOK {
		t.Errorf("second use: errcode %d, want it working", code)
	}
	f.fake.RejectAccessTokens(40001, -1)
	forced := f.stableToken(t, true).AccessToken
	for _, tk := range []string{tok, forced, forced} {
		if code := f.tokenErrcode(t, tk); code != 40001 {
			t.Errorf("rejecting every use: errcode %d, want 40001", code)
		}
	}
	if r := f.stableToken(t, false); r.Errcode != 0 || r.AccessToken != forced {
		t.Errorf("stable_token while uses are rejected: %s, want the current token", r.raw)
	}
	f.fake.RejectAccessTokens(0, 0)
	if code := f.tokenErrcode(t, forced); code != tokenOK {
		t.Errorf("after clearing: errcode %d, want it working", code)
	}
	defer func() {
		if recover() == nil {
			t.Error("RejectAccessTokens(12345, 1) did not panic")
		}
	}()
	f.fake.RejectAccessTokens(12345, 1)
}

// TestIPAllowList: with an allow-list set, the token APIs answer 40164 to any other
// address, naming it, as WeChat does.
func TestIPAllowList(t *testing.T) {
	f := newFixture(t)
	f.fake.SetIPAllowList("203.0.113.7")
	legacy := url.Values{"grant_type": {"client_credential"}, "appid": {appID}, "secret": {secret}}
	for name, r := range map[string]reply{
		"stable_token": f.stableToken(t, false),
		"token":        f.do(t, http.MethodGet, "/cgi-bin/token", legacy, nil),
	} {
		if r.Errcode != 40164 || !strings.Contains(r.Errmsg, "invalid ip 127.0.0.1") || !strings.Contains(r.Errmsg, "not in whitelist") || r.AccessToken != "" {
			t.Errorf("%s from an address not allowed: %s, want 40164 naming 127.0.0.1", name, r.raw)
		}
	}
	f.fake.SetIPAllowList("203.0.113.7", "127.0.0.1")
	if r := f.stableToken(t, false); r.Errcode != 0 {
		t.Errorf("from an allowed address: %s", r.raw)
	}
	f.fake.SetIPAllowList()
	if r := f.legacyToken(t); r.Errcode != 0 {
		t.Errorf("with no allow-list: %s", r.raw)
	}
}
