// Fuzz targets for what WeChat answers. Run one with:
//
//	go test -run '^$' -fuzz '^FuzzAnswer$' -fuzztime 10m -parallel 1 ./internal/wechat
//
// The seeds (f.Add and testdata/fuzz) run with the ordinary tests.
package wechat

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"
)

const (
	fuzzAppID  = "wx0123456789abcdef"
	fuzzSecret = "s3cr3t-0f-the-app-do-not-leak-9f8e7d6c"
	fuzzOpenID = "oFuzz-0123456789abcdefghijkl"
	fuzzToken  = "ACCESS-TOKEN-0123456789"
	fuzzKey    = "tiihtNczf5v6AKRyjwEUhQ=="
)

// answerSeeds are bodies WeChat sends, or might when broken. In them, $SECRET stands
// for the app secret and $CODE for the code of the call, so that errmsg can echo them,
// and $PAD for 64 KiB of spaces, so that a small input makes an answer too large.
var answerSeeds = []string{
	`{"openid":"oFuzz-0123456789abcdefghijkl","session_key":"tiihtNczf5v6AKRyjwEUhQ==","unionid":"uFuzz"}`,
	`{"openid":"oFuzz-0123456789abcdefghijkl","session_key":"tiihtNczf5v6AKRyjwEUhQ=="}`,
	`{"errcode":0,"errmsg":"ok","access_token":"ACCESS-TOKEN-0123456789","expires_in":7200}`,
	`{"errcode":0,"errmsg":"ok","phone_info":{"phoneNumber":"+8613800000000","purePhoneNumber":"13800000000","countryCode":"86","watermark":{"timestamp":1700000000,"appid":"wx0123456789abcdef"}}}`,
	`{"errcode":0,"errmsg":"ok"}`,
	`{"errcode":40029,"errmsg":"invalid code, rid: 6592a1b2-3c4d5e6f-7a8b9c0d"}`,
	`{"errcode":40163,"errmsg":"code been used, rid: 6592a1b2-0123abcd-11112222"}`,
	`{"errcode":-1,"errmsg":"system error"}`,
	`{"errcode":45011,"errmsg":"api minute-quota reach limit"}`,
	`{"errno":1400001,"errmsg":"quota exhausted"}`,
	`{"errcode":40013,"errmsg":"invalid appid"}`,
	`{"errcode":0,"errmsg":"ok","phone_info":{"phoneNumber":"13800000000","purePhoneNumber":"13800000000","countryCode":86,"watermark":{"timestamp":1700000000,"appid":"wx0123456789abcdef"}}}`,
	`{"errcode":87009,"errmsg":"invalid signature rid: 65-"}`,
	`{"errcode":40125,"errmsg":"invalid appsecret $SECRET, rid: x"}`,
	`{"errcode":40029,"errmsg":"invalid code $CODE hint: [js_code=$CODE]"}`,
	`{"errcode":"40029","errmsg":"a string errcode"}`,
	`{"errcode":40029.5}`,
	`{"errcode":99999999999999999999}`,
	`{"openid":"oFuzz","session_key":"k"`,
	`{"openid":null,"session_key":"k"}`,
	`{"access_token":"t","expires_in":-5}`,
	`{"access_token":"t","expires_in":9223372036854775807}`,
	`{"phone_info":{"phoneNumber":"","purePhoneNumber":""}}`,
	`{"phone_info":null}`,
	`<html><body>502 Bad Gateway</body></html>`,
	``,
	`null`,
	`[]`,
	`"ok"`,
}

// sentinels are the errors every failed call matches exactly one of.
var sentinels = []error{ErrInvalidCode, ErrRateLimited, ErrRiskyUser, ErrConfig, ErrIPNotAllowed, ErrAccessToken, ErrDailyQuota, ErrSessionKeyStale, ErrForeignCode, ErrQuotaExhausted, ErrUnavailable, ErrUnexpected}

// kinds is the errcode table of the spec (wechat-api.md).
var kinds = map[int]error{
	-1: ErrUnavailable, 40029: ErrInvalidCode, 40163: ErrInvalidCode, 41008: ErrInvalidCode,
	45011: ErrRateLimited, 40226: ErrRiskyUser, 40013: ErrConfig, 40125: ErrConfig,
	40164: ErrIPNotAllowed, 40001: ErrAccessToken, 40014: ErrAccessToken, 42001: ErrAccessToken,
	45009: ErrDailyQuota, 87009: ErrSessionKeyStale, 1400001: ErrQuotaExhausted,
}

// phoneKindsInSpec is what getuserphonenumber means otherwise (wechat-api.md).
var phoneKindsInSpec = map[int]error{40013: ErrForeignCode}

// fuzzCode returns a code from fuzzed text: one ValidateCode would pass, or a fixed one.
func fuzzCode(s string) string {
	if s == "" || len(s) > 128 || strings.IndexFunc(s, func(r rune) bool { return r < ' ' || r > '~' }) >= 0 {
		return "0a1b2c3d4e5f6g7h8i9j0k1l2m3n4o5p"
	}
	return s
}

// fuzzCall is one API's call with its decoder, as the Client makes it.
type fuzzCall struct {
	api     string
	secrets []string // besides the app secret: what its errmsg must never show
	decode  func(c *Client, body []byte) (any, error)
	// encode writes a decoded value back as WeChat's success answer (the spec's fields).
	encode func(v any) string
}

func fuzzCalls(code string, began time.Time) []fuzzCall {
	callFor := func(api string, secrets ...string) *call { return &call{api: api, secrets: secrets} }
	quote := func(s string) string { b, _ := json.Marshal(s); return string(b) }
	return []fuzzCall{{
		api:     apiCode2Session,
		secrets: []string{code},
		decode: func(c *Client, body []byte) (any, error) {
			v, _, err := answer(c, callFor(apiCode2Session, code), body, decodeSession)
			return v, err
		},
		encode: func(v any) string {
			s := v.(Session)
			out := `{"openid":` + quote(s.OpenID) + `,"session_key":` + quote(s.SessionKey)
			if s.UnionID != "" {
				out += `,"unionid":` + quote(s.UnionID)
			}
			return out + `}`
		},
	}, {
		api: apiStableToken,
		decode: func(c *Client, body []byte) (any, error) {
			v, _, err := answer(c, callFor(apiStableToken), body, decodeAccessToken(began, false))
			return v, err
		},
		encode: func(v any) string {
			t := v.(AccessToken)
			return fmt.Sprintf(`{"access_token":%s,"expires_in":%d}`, quote(t.Token), int64(t.ExpiresAt.Sub(began)/time.Second))
		},
	}, {
		api:     apiGetPhoneNumber,
		secrets: []string{fuzzToken, code},
		decode: func(c *Client, body []byte) (any, error) {
			k := callFor(apiGetPhoneNumber, fuzzToken, code)
			k.kinds = phoneKinds
			v, _, err := answer(c, k, body, decodePhone(fuzzOpenID))
			return v, err
		},
		encode: func(v any) string {
			p := v.(PhoneInfo)
			return fmt.Sprintf(`{"errcode":0,"errmsg":"ok","phone_info":{"phoneNumber":%s,"purePhoneNumber":%s,"countryCode":%s,"watermark":{"timestamp":%d,"appid":%s}}}`,
				quote(p.PhoneNumber), quote(p.PurePhoneNumber), quote(p.CountryCode), p.WatermarkTimestamp, quote(p.WatermarkAppID))
		},
	}, {
		api:     apiResetUserSessionKey,
		secrets: []string{fuzzToken, fuzzKey},
		decode: func(c *Client, body []byte) (any, error) {
			v, _, err := answer(c, callFor(apiResetUserSessionKey, fuzzToken, fuzzKey), body, decodeNewSessionKey(fuzzOpenID))
			return v, err
		},
		encode: func(v any) string {
			return `{"openid":` + quote(fuzzOpenID) + `,"session_key":` + quote(v.(string)) + `}`
		},
	}}
}

// FuzzAnswer feeds arbitrary bodies to the decoding of every API's answer: never a
// panic; a body that is not WeChat's JSON, is cut short or lacks the fields a success
// carries is ErrUnavailable; a non-zero errcode is an *APIError matching the sentinel
// of the spec's table, whose errmsg never shows the app secret or the call's code; and
// a success reads back the same from the spec's own JSON for it.
func FuzzAnswer(f *testing.F) {
	for _, s := range answerSeeds {
		f.Add([]byte(s), "")
	}
	f.Add([]byte(`{"errcode":40029,"errmsg":"invalid code $CODE"}`), "081Kq2Ga1MZ7Ji0Pv1Ia1Mnp0X2Kq2GK")
	f.Add([]byte(`{"errcode":40029,"errmsg":"invalid code $CODE"}`), "a+b c&d=e%f")
	f.Add([]byte(`{"errcode":40001,"errmsg":"invalid credential, access_token is invalid or not latest: ACCESS-TOKEN-0123456789"}`), "")
	f.Add([]byte(`{"openid":"oFuzz","session_key":"k","access_token":"t","expires_in":7200,"phone_info":{"phoneNumber":"1"}}$PAD`), "")

	c, err := New(Config{BaseURL: "http://127.0.0.1:1", AppID: fuzzAppID, Secret: fuzzSecret})
	if err != nil {
		f.Fatal(err)
	}
	began := time.Unix(1700000000, 0)

	f.Fuzz(func(t *testing.T, body []byte, code string) {
		code = fuzzCode(code)
		body = bytes.ReplaceAll(body, []byte("$SECRET"), []byte(fuzzSecret))
		body = bytes.ReplaceAll(body, []byte("$CODE"), []byte(code))
		body = bytes.Replace(body, []byte("$PAD"), bytes.Repeat([]byte(" "), maxBody), 1)
		// The envelope every answer shares, typed as WeChat writes it: an errmsg that is
		// not a string makes the body something other than WeChat's JSON (a crasher
		// found {"errCode":1,"errmsg":0}, testdata/fuzz/FuzzAnswer/21281f3bd4a802f4).
		var env struct {
			Errcode int    `json:"errcode"`
			Errno   int    `json:"errno"` // where some APIs put it instead
			Errmsg  string `json:"errmsg"`
		}
		envErr := json.Unmarshal(body, &env)
		if env.Errcode == 0 {
			env.Errcode = env.Errno
		}

		for _, fc := range fuzzCalls(code, began) {
			v, err := fc.decode(c, body)
			if err != nil {
				checkAnswerErr(t, fc, body, err, envErr, env.Errcode)
				continue
			}
			if envErr != nil || env.Errcode != 0 || len(body) > maxBody {
				t.Fatalf("%s took %q as a success", fc.api, body)
			}
			if at, ok := v.(AccessToken); ok && (!at.ExpiresAt.After(began) || at.Token == "") {
				t.Fatalf("%s read %q as a token expiring at %s, for a call begun at %s", fc.api, body, at.ExpiresAt, began)
			}
			again, err := fc.decode(c, []byte(fc.encode(v)))
			if err != nil || !reflect.DeepEqual(again, v) {
				t.Fatalf("%s read %q as %#v, but the same as WeChat writes it, %s, as %#v, %v", fc.api, body, v, fc.encode(v), again, err)
			}
		}
	})
}

// checkAnswerErr checks the error of an answer that is not a success.
func checkAnswerErr(t *testing.T, fc fuzzCall, body []byte, err, envErr error, errcode int) {
	t.Helper()
	api := fc.api
	matched := 0
	for _, s := range sentinels {
		if errors.Is(err, s) {
			matched++
		}
	}
	if matched != 1 {
		t.Fatalf("%s: %v matches %d sentinels", api, err, matched)
	}
	var apiErr *APIError
	if envErr != nil || errcode == 0 || len(body) > maxBody {
		if errors.As(err, &apiErr) || !errors.Is(err, ErrUnavailable) {
			t.Fatalf("%s: the answer %q gave %v, want ErrUnavailable", api, body, err)
		}
		// Built on our side, from our own words only.
		if msg := strings.TrimPrefix(err.Error(), "wechat "+api+": "); !strings.HasPrefix(msg, "response ") && !strings.HasPrefix(msg, "success answer ") {
			t.Fatalf("%s: the error %q is not one of ours", api, err)
		}
		return
	}
	if !errors.As(err, &apiErr) || apiErr.Errcode != errcode || apiErr.API != api {
		t.Fatalf("%s: errcode %d gave %#v", api, errcode, err)
	}
	want, ok := kinds[errcode]
	if !ok {
		want = ErrUnexpected
	}
	if other, ok := phoneKindsInSpec[errcode]; ok && api == apiGetPhoneNumber {
		want = other
	}
	if !errors.Is(err, want) {
		t.Fatalf("%s: errcode %d gave %v, want %v", api, errcode, err, want)
	}
	// The scrubbed errmsg, with REDACTED marked so that it cannot join with its
	// neighbours into a secret.
	shown := strings.ReplaceAll(apiErr.Errmsg, redacted, "\x00")
	for _, secret := range append([]string{fuzzSecret}, fc.secrets...) {
		if strings.Contains(shown, secret) || strings.Contains(shown, url.QueryEscape(secret)) {
			t.Fatalf("%s: errmsg %q shows the secret %q", api, apiErr.Errmsg, secret)
		}
	}
	if apiErr.RID != "" && (!strings.Contains(apiErr.Errmsg, "rid: "+apiErr.RID) ||
		strings.Trim(apiErr.RID, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-") != "") {
		t.Fatalf("%s: rid %q read from errmsg %q", api, apiErr.RID, apiErr.Errmsg)
	}
}

// FuzzClient drives the real Client against a server answering the fuzzed body with
// status 200: every call ends within its deadline with a value or an error matching
// exactly one sentinel, and a value is what the body decodes to.
func FuzzClient(f *testing.F) {
	for i, s := range answerSeeds {
		f.Add([]byte(s), "", uint8(i))
	}

	var mu sync.Mutex
	var answerBody []byte
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		b := answerBody
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.Write(b)
	}))
	f.Cleanup(srv.Close)
	const deadline = 2 * time.Second
	c, err := New(Config{
		BaseURL: srv.URL, AppID: fuzzAppID, Secret: fuzzSecret,
		AttemptTimeout: 500 * time.Millisecond, Deadline: deadline, RetryBackoff: time.Millisecond,
	})
	if err != nil {
		f.Fatal(err)
	}

	f.Fuzz(func(t *testing.T, body []byte, code string, which uint8) {
		code = fuzzCode(code)
		body = bytes.ReplaceAll(body, []byte("$SECRET"), []byte(fuzzSecret))
		body = bytes.ReplaceAll(body, []byte("$CODE"), []byte(code))
		mu.Lock()
		answerBody = body
		mu.Unlock()

		ctx := context.Background()
		start := time.Now()
		var got any
		var err error
		var want func(body []byte) (any, error)
		switch which % 4 {
		case 0:
			got, err = c.Code2Session(ctx, code)
			want = func(b []byte) (any, error) { v, _, err := decodeSession(b); return v, err }
		case 1:
			var at AccessToken
			at, err = c.StableToken(ctx, false)
			got = at.Token // ExpiresAt depends on the clock
			want = func(b []byte) (any, error) { v, _, err := decodeAccessToken(start, false)(b); return v.Token, err }
		case 2:
			got, err = c.GetPhoneNumber(ctx, fuzzToken, code, fuzzOpenID)
			want = func(b []byte) (any, error) { v, _, err := decodePhone(fuzzOpenID)(b); return v, err }
		case 3:
			got, err = c.ResetUserSessionKey(ctx, fuzzToken, fuzzOpenID, fuzzKey)
			want = func(b []byte) (any, error) { v, _, err := decodeNewSessionKey(fuzzOpenID)(b); return v, err }
		}
		if took := time.Since(start); took > deadline+time.Second {
			t.Fatalf("the call took %s, past its %s deadline", took, deadline)
		}
		if err != nil {
			matched := 0
			for _, s := range sentinels {
				if errors.Is(err, s) {
					matched++
				}
			}
			if matched != 1 {
				t.Fatalf("%v matches %d sentinels", err, matched)
			}
			if strings.Contains(strings.ReplaceAll(err.Error(), redacted, "\x00"), fuzzSecret) {
				t.Fatalf("the error %q shows the app secret", err)
			}
			return
		}
		v, derr := want(body)
		if derr != nil || !reflect.DeepEqual(got, v) {
			t.Fatalf("the call answered %#v for %q, which decodes to %#v, %v", got, body, v, derr)
		}
	})
}
