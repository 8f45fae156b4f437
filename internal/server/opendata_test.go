package server_test

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/sha1"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/wxlogin/wxlogin/internal/opendata"
	"github.com/wxlogin/wxlogin/internal/testdb"
	"github.com/wxlogin/wxlogin/internal/wechat/fakewechat"
)

const decryptQuery = `query($d: String!, $iv: String!, $raw: String, $sig: String) {
  decryptOpenData(encryptedData: $d, iv: $iv, rawData: $raw, signature: $sig)
}`

// sealOpenData encrypts v as WeChat does: AES-128-CBC, the session key as key, PKCS#7.
func sealOpenData(t *testing.T, sessionKey string, plain []byte) (data, iv string) {
	t.Helper()
	key, err := base64.StdEncoding.DecodeString(sessionKey)
	if err != nil || len(key) != 16 {
		t.Fatalf("session key %q: %v", sessionKey, err)
	}
	n := aes.BlockSize - len(plain)%aes.BlockSize
	padded := append(bytes.Clone(plain), bytes.Repeat([]byte{byte(n)}, n)...)
	return encryptBlocks(t, key, padded)
}

func encryptBlocks(t *testing.T, key, padded []byte) (data, iv string) {
	t.Helper()
	ivb := []byte("0123456789abcdef")
	block, _ := aes.NewCipher(key)
	out := make([]byte, len(padded))
	cipher.NewCBCEncrypter(block, ivb).CryptBlocks(out, padded)
	return base64.StdEncoding.EncodeToString(out), base64.StdEncoding.EncodeToString(ivb)
}

func openDataJSON(appid string, at time.Time) []byte {
	b, _ := json.Marshal(map[string]any{
		"openGId":   "GroupOpenId0001",
		"watermark": map[string]any{"appid": appid, "timestamp": at.Unix()},
	})
	return b
}

func (e *env) decrypt(token, data, iv string, raw, sig *string) (map[string]any, string) {
	e.t.Helper()
	vars := map[string]any{"d": data, "iv": iv, "raw": raw, "sig": sig}
	r := e.post(0, token, decryptQuery, vars)
	if c := r.Code(); c != "" {
		return nil, c
	}
	var out map[string]any
	jsonUnmarshal(e.t, r.Data["decryptOpenData"], &out)
	return out, ""
}

func TestDecryptOpenData(t *testing.T) {
	testdb.Run(t, func(t *testing.T, b testdb.Backend) {
		e := newEnv(t, b)
		p := e.mustLogin(0, e.fake.IssueCode(alice))
		key := e.fake.SessionKeyOf(alice.OpenID)
		now := e.clock.Now()

		data, iv := sealOpenData(t, key, openDataJSON(testAppID, now))
		got, c := e.decrypt(p.Token, data, iv, nil, nil)
		if c != "" || got["openGId"] != "GroupOpenId0001" {
			t.Fatalf("round trip = %v %s", got, c)
		}

		raw := `{"nickName":"微信用户","gender":0}`
		sum := sha1.Sum([]byte(raw + key))
		sig := hex.EncodeToString(sum[:])
		if _, c := e.decrypt(p.Token, data, iv, &raw, &sig); c != "" {
			t.Errorf("with a good rawData signature: %s", c)
		}

		keyBytes, _ := base64.StdEncoding.DecodeString(key)
		badPadding := bytes.Repeat([]byte{'x'}, 32)
		badPadding[31] = 0 // not PKCS#7
		// A valid last byte, but the bytes before it do not repeat it: strict PKCS#7
		// refuses what a lax check (the last byte only) would accept.
		laxPadding := append(bytes.Clone(openDataJSON(testAppID, now)), 1, 2, 3)
		for len(laxPadding)%16 != 0 {
			laxPadding = append([]byte{' '}, laxPadding...)
		}
		lax, laxIV := encryptBlocks(t, keyBytes, laxPadding)
		corrupt, corruptIV := encryptBlocks(t, keyBytes, badPadding)
		foreign, foreignIV := sealOpenData(t, key, openDataJSON("wxotherapp000001", now))
		stale, staleIV := sealOpenData(t, key, openDataJSON(testAppID, now.Add(-2*time.Hour)))
		future, futureIV := sealOpenData(t, key, openDataJSON(testAppID, now.Add(time.Hour)))
		bare, bareIV := sealOpenData(t, key, []byte(`{"openGId":"x"}`))
		wrongSig := "0000000000000000000000000000000000000000"
		shortIV := base64.StdEncoding.EncodeToString([]byte("12345678"))
		for name, tc := range map[string]struct {
			data, iv  string
			raw, sig  *string
			wantCheck bool // the failure is ambiguous: WeChat is asked about the key
		}{
			"bad padding":      {corrupt, corruptIV, nil, nil, true},
			"lax padding":      {lax, laxIV, nil, nil, true},
			"iv of 8 bytes":    {data, shortIV, nil, nil, false},
			"iv not base64":    {data, "!!!", nil, nil, false},
			"data not base64":  {"%%%", iv, nil, nil, false},
			"data not blocks":  {base64.StdEncoding.EncodeToString([]byte("short")), iv, nil, nil, false},
			"foreign appid":    {foreign, foreignIV, nil, nil, false},
			"stale watermark":  {stale, staleIV, nil, nil, false},
			"future watermark": {future, futureIV, nil, nil, false},
			"no watermark":     {bare, bareIV, nil, nil, false},
			"wrong signature":  {data, iv, &raw, &wrongSig, true},
			"rawData, no sig":  {data, iv, &raw, nil, false},
		} {
			before := e.fake.CallsTo("checksession")
			if _, c := e.decrypt(p.Token, tc.data, tc.iv, tc.raw, tc.sig); c != "BAD_USER_INPUT" {
				t.Errorf("%s: %q, want BAD_USER_INPUT", name, c)
			}
			if asked := e.fake.CallsTo("checksession") > before; asked != tc.wantCheck {
				t.Errorf("%s: asked WeChat about the key = %v, want %v", name, asked, tc.wantCheck)
			}
		}
		if _, c := e.decrypt("", data, iv, nil, nil); c != "UNAUTHENTICATED" {
			t.Errorf("without a session: %q", c)
		}
	})
}

func TestOpenDataWithARotatedSessionKey(t *testing.T) {
	testdb.Run(t, func(t *testing.T, b testdb.Backend) {
		e := newEnv(t, b)
		p := e.mustLogin(0, e.fake.IssueCode(alice))
		// The mini-program called wx.login again, and WeChat rotated the key, but the
		// server has not seen that login: the data is made with a key it does not have.
		spendAtWeChat(e, e.fake.IssueCode(alice))
		data, iv := sealOpenData(t, e.fake.SessionKeyOf(alice.OpenID), openDataJSON(testAppID, e.clock.Now()))
		if _, c := e.decrypt(p.Token, data, iv, nil, nil); c != "SESSION_KEY_STALE" {
			t.Fatalf("data made with a rotated key: %q, want SESSION_KEY_STALE", c)
		}
		// What the client does: log in again, get the data again, retry.
		again := e.mustLogin(0, e.fake.IssueCode(alice))
		data, iv = sealOpenData(t, e.fake.SessionKeyOf(alice.OpenID), openDataJSON(testAppID, e.clock.Now()))
		if got, c := e.decrypt(again.Token, data, iv, nil, nil); c != "" || got["openGId"] != "GroupOpenId0001" {
			t.Errorf("after logging in again: %v %s", got, c)
		}
	})
}

// TestOpenDataAfterANewerWxLogin is the case the stale-key check exists for: WeChat
// rotated the user's key when it issued a newer wx.login code, which this server never
// saw exchanged, and the mini-program encrypted the data with the new key. The server's
// decryption fails, checksession says its key is stale: SESSION_KEY_STALE. Data that is
// merely corrupt, under a key checksession calls current, is BAD_USER_INPUT.
func TestOpenDataAfterANewerWxLogin(t *testing.T) {
	testdb.Run(t, func(t *testing.T, b testdb.Backend) {
		e := newEnv(t, b, withFake(func(o *fakewechat.Options) { o.SessionKeys = fakewechat.RotateOnIssue }))
		p := e.mustLogin(0, e.fake.IssueCode(alice))
		e.fake.IssueCode(alice) // wx.login again; the code is never sent to the server
		data, iv := sealOpenData(t, e.fake.SessionKeyOf(alice.OpenID), openDataJSON(testAppID, e.clock.Now()))
		if _, c := e.decrypt(p.Token, data, iv, nil, nil); c != "SESSION_KEY_STALE" {
			t.Errorf("data under the key of a newer wx.login: %q, want SESSION_KEY_STALE", c)
		}
		if n := e.fake.CallsTo("checksession"); n != 1 {
			t.Errorf("checksession calls = %d, want 1", n)
		}

		// The client logs in again with a fresh code: the server's key is current.
		again := e.mustLogin(0, e.fake.IssueCode(alice))
		key := e.fake.SessionKeyOf(alice.OpenID)
		keyBytes, _ := base64.StdEncoding.DecodeString(key)
		corrupt, corruptIV := encryptBlocks(t, keyBytes, bytes.Repeat([]byte{'x'}, 32)) // no PKCS#7 padding
		if _, c := e.decrypt(again.Token, corrupt, corruptIV, nil, nil); c != "BAD_USER_INPUT" {
			t.Errorf("corrupt data under the current key: %q, want BAD_USER_INPUT", c)
		}
		if n := e.fake.CallsTo("checksession"); n != 2 {
			t.Errorf("checksession calls = %d, want 2", n)
		}
		data, iv = sealOpenData(t, key, openDataJSON(testAppID, e.clock.Now()))
		if got, c := e.decrypt(again.Token, data, iv, nil, nil); c != "" || got["openGId"] != "GroupOpenId0001" {
			t.Errorf("after logging in again: %v %s", got, c)
		}
	})
}

// TestOpenDataWhenWeChatKeepsTheKey: two logins in a row often keep the key, and data
// made before the second still decrypts after it.
func TestOpenDataWhenWeChatKeepsTheKey(t *testing.T) {
	testdb.Run(t, func(t *testing.T, b testdb.Backend) {
		e := newEnv(t, b, withFake(func(o *fakewechat.Options) { o.SessionKeys = fakewechat.KeepSessionKey }))
		e.mustLogin(0, e.fake.IssueCode(alice))
		data, iv := sealOpenData(t, e.fake.SessionKeyOf(alice.OpenID), openDataJSON(testAppID, e.clock.Now()))
		p := e.mustLogin(0, e.fake.IssueCode(alice))
		if got, c := e.decrypt(p.Token, data, iv, nil, nil); c != "" || got["openGId"] != "GroupOpenId0001" {
			t.Errorf("data made before a login that kept the key: %v %s", got, c)
		}
	})
}

// TestOpenDataTrailingBytes: a plaintext with bytes after its JSON is refused, without
// asking WeChat about the key.
func TestOpenDataTrailingBytes(t *testing.T) {
	testdb.Run(t, func(t *testing.T, b testdb.Backend) {
		e := newEnv(t, b)
		p := e.mustLogin(0, e.fake.IssueCode(alice))
		plain := append(openDataJSON(testAppID, e.clock.Now()), []byte(`{"openGId":"GroupOpenId0002"}`)...)
		data, iv := sealOpenData(t, e.fake.SessionKeyOf(alice.OpenID), plain)
		r := e.post(0, p.Token, decryptQuery, map[string]any{"d": data, "iv": iv})
		if r.Code() != "BAD_USER_INPUT" || !strings.Contains(r.Errors[0].Message, "after its JSON") {
			t.Errorf("trailing bytes: %q %v, want BAD_USER_INPUT saying so", r.Code(), r.Errors)
		}
		if n := e.fake.CallsTo("checksession"); n != 0 {
			t.Errorf("checksession calls = %d, want 0", n)
		}
	})
}

// TestFailedDecryptionsAreLimitedPerUser: each failed decryption asks WeChat about the
// key, so a user's failures are limited; past the limit the answer is RATE_LIMITED and
// WeChat is not asked. Decryptions that succeed spend nothing.
func TestFailedDecryptionsAreLimitedPerUser(t *testing.T) {
	testdb.Run(t, func(t *testing.T, b testdb.Backend) {
		e := newEnv(t, b)
		p := e.mustLogin(0, e.fake.IssueCode(alice))
		bobs := e.mustLogin(0, e.fake.IssueCode(bob))
		keyBytes, _ := base64.StdEncoding.DecodeString(e.fake.SessionKeyOf(alice.OpenID))
		corrupt, corruptIV := encryptBlocks(t, keyBytes, bytes.Repeat([]byte{'x'}, 32))
		for i := range opendata.KeyCheckBurst {
			if _, c := e.decrypt(p.Token, corrupt, corruptIV, nil, nil); c != "BAD_USER_INPUT" {
				t.Fatalf("failure %d: %q, want BAD_USER_INPUT", i+1, c)
			}
		}
		r := e.post(0, p.Token, decryptQuery, map[string]any{"d": corrupt, "iv": corruptIV})
		wait := 60 / opendata.KeyChecksPerMinute
		if r.Code() != "RATE_LIMITED" || r.Errors[0].Extensions["retryAfter"] != float64(wait) ||
			!strings.Contains(r.Errors[0].Message, "for this user") || strings.Contains(r.Errors[0].Message, "address") {
			t.Fatalf("failure %d: %q %v, want RATE_LIMITED per user with retryAfter %d", opendata.KeyCheckBurst+1, r.Code(), r.Errors, wait)
		}
		if n := e.fake.CallsTo("checksession"); n != opendata.KeyCheckBurst {
			t.Errorf("checksession calls = %d, want %d", n, opendata.KeyCheckBurst)
		}
		data, iv := sealOpenData(t, e.fake.SessionKeyOf(alice.OpenID), openDataJSON(testAppID, e.clock.Now()))
		if _, c := e.decrypt(p.Token, data, iv, nil, nil); c != "" {
			t.Errorf("good data past the limit: %s, want it decrypted", c)
		}
		if _, c := e.decrypt(bobs.Token, corrupt, corruptIV, nil, nil); c != "BAD_USER_INPUT" {
			t.Errorf("another user's failure: %q, want BAD_USER_INPUT (an allowance of their own)", c)
		}
		e.clock.Advance(time.Duration(wait) * time.Second)
		if _, c := e.decrypt(p.Token, corrupt, corruptIV, nil, nil); c != "BAD_USER_INPUT" {
			t.Errorf("after %d s: %q, want the key checked again", wait, c)
		}
		if n := e.fake.CallsTo("checksession"); n != opendata.KeyCheckBurst+2 {
			t.Errorf("checksession calls = %d, want %d", n, opendata.KeyCheckBurst+2)
		}
	})
}
