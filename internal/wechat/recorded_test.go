package wechat_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/wxlogin/wxlogin/internal/capture"
	"github.com/wxlogin/wxlogin/internal/wechat"
)

// answering is a client of a WeChat that answers every request with body, logging
// into logs.
func answering(t *testing.T, body string, logs *capture.Buffer) *wechat.Client {
	t.Helper()
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain") // as WeChat often does: parse by content
		fmt.Fprint(w, body)
	}))
	t.Cleanup(ts.Close)
	c, err := wechat.New(wechat.Config{
		BaseURL: ts.URL, AppID: testAppID, Secret: testSecret,
		Logger: slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestRecordedCode2SessionErrors parses error bodies WeChat really sent, as the SDKs'
// issue trackers recorded them: each is an invalid code, and its rid reaches the log.
func TestRecordedCode2SessionErrors(t *testing.T) {
	for _, tc := range []struct {
		body    string
		errcode int
		rid     string
	}{
		{`{"errcode":40163,"errmsg":"code been used, rid: 6166f719-6cb5d09c-633ab469"}`, 40163, "6166f719-6cb5d09c-633ab469"},
		{`{"errcode":40029,"errmsg":"invalid code hint: [WiEBWV0sf-Te2URA] rid: 66165fe0-612cb3df-20194ddf"}`, 40029, "66165fe0-612cb3df-20194ddf"},
	} {
		t.Run(fmt.Sprint(tc.errcode), func(t *testing.T) {
			logs := &capture.Buffer{}
			_, err := answering(t, tc.body, logs).Code2Session(context.Background(), "081aBcDeF")
			var apiErr *wechat.APIError
			if !errors.Is(err, wechat.ErrInvalidCode) || !errors.As(err, &apiErr) {
				t.Fatalf("err = %v, want ErrInvalidCode as an *APIError", err)
			}
			if apiErr.Errcode != tc.errcode || apiErr.RID != tc.rid {
				t.Errorf("errcode %d rid %q, want %d and %q", apiErr.Errcode, apiErr.RID, tc.errcode, tc.rid)
			}
			if !strings.Contains(logs.String(), `"rid":"`+tc.rid+`"`) {
				t.Errorf("the log lacks the rid %s:\n%s", tc.rid, logs)
			}
		})
	}
}

// TestPhoneAnswersAsWeChatSendsThem: getuserphonenumber's success as the documentation's
// example has it (countryCode a number, the mainland number bare), as its table has it
// (countryCode a string), and for a number outside mainland China (with its area code).
func TestPhoneAnswersAsWeChatSendsThem(t *testing.T) {
	for _, tc := range []struct {
		name, info               string
		phone, pure, countryCode string
	}{
		{
			"documented example", `"phoneNumber":"13800000000","purePhoneNumber":"13800000000","countryCode":86`,
			"13800000000", "13800000000", "86",
		},
		{
			"countryCode as a string", `"phoneNumber":"13800000000","purePhoneNumber":"13800000000","countryCode":"86"`,
			"13800000000", "13800000000", "86",
		},
		{
			"Hong Kong", `"phoneNumber":"+85261234567","purePhoneNumber":"61234567","countryCode":852`,
			"+85261234567", "61234567", "852",
		},
		{
			"countryCode with a plus", `"phoneNumber":"+85261234567","purePhoneNumber":"61234567","countryCode":"+852"`,
			"+85261234567", "61234567", "852",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			body := `{"errcode":0,"errmsg":"ok","phone_info":{` + tc.info + `,"watermark":{"timestamp":1700000000,"appid":"` + testAppID + `"}}}`
			info, err := answering(t, body, &capture.Buffer{}).GetPhoneNumber(context.Background(), "token", "phone-code", "o-alice")
			if err != nil {
				t.Fatalf("GetPhoneNumber: %v", err)
			}
			if info.PhoneNumber != tc.phone || info.PurePhoneNumber != tc.pure || info.CountryCode != tc.countryCode ||
				info.WatermarkAppID != testAppID || info.WatermarkTimestamp != 1700000000 {
				t.Errorf("got %q %q %q %q %d, want %q %q %q", info.PhoneNumber, info.PurePhoneNumber, info.CountryCode,
					info.WatermarkAppID, info.WatermarkTimestamp, tc.phone, tc.pure, tc.countryCode)
			}
		})
	}
	logs := &capture.Buffer{}
	body := `{"errcode":0,"errmsg":"ok","phone_info":{"phoneNumber":"13800000000","purePhoneNumber":"13800000000","countryCode":true}}`
	if _, err := answering(t, body, logs).GetPhoneNumber(context.Background(), "token", "phone-code", ""); !errors.Is(err, wechat.ErrUnavailable) {
		t.Errorf("countryCode neither number nor string: %v, want ErrUnavailable", err)
	}
	if strings.Contains(logs.String(), "13800000000") {
		t.Error("a broken answer's number reached the log")
	}
}

// TestPhoneRefusals: the errors only getuserphonenumber gives, and 40013's other meaning
// there.
func TestPhoneRefusals(t *testing.T) {
	for _, tc := range []struct {
		name, body string
		want       error
		errcode    int
	}{
		{"quota in errcode", `{"errcode":1400001,"errmsg":"feature not authorized or quota exhausted, rid: 65a1b2c3-1a2b3c4d-5e6f7a8b"}`, wechat.ErrQuotaExhausted, 1400001},
		{"quota in errno", `{"errno":1400001,"errmsg":"feature not authorized or quota exhausted"}`, wechat.ErrQuotaExhausted, 1400001},
		{"code from another mini-program", `{"errcode":40013,"errmsg":"invalid appid, rid: 65a1b2c3-1a2b3c4d-5e6f7a8c"}`, wechat.ErrForeignCode, 40013},
		{"invalid code", `{"errcode":40029,"errmsg":"invalid code, rid: 65a1b2c3-1a2b3c4d-5e6f7a8d"}`, wechat.ErrInvalidCode, 40029},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := answering(t, tc.body, &capture.Buffer{}).GetPhoneNumber(context.Background(), "token", "phone-code", "o-alice")
			if !errors.Is(err, tc.want) || errcodeOf(err) != tc.errcode {
				t.Fatalf("err = %v, want %v with errcode %d", err, tc.want, tc.errcode)
			}
			for _, other := range []error{wechat.ErrInvalidCode, wechat.ErrConfig, wechat.ErrUnavailable, wechat.ErrUnexpected, wechat.ErrForeignCode, wechat.ErrQuotaExhausted} {
				if other != tc.want && errors.Is(err, other) {
					t.Errorf("err = %v is also %v: want exactly one sentinel", err, other)
				}
			}
		})
	}
	// For the login exchange 40013 keeps its meaning: the server's appid is wrong.
	_, err := answering(t, `{"errcode":40013,"errmsg":"invalid appid"}`, &capture.Buffer{}).Code2Session(context.Background(), "081aBcDeF")
	if !errors.Is(err, wechat.ErrConfig) {
		t.Errorf("40013 from jscode2session: %v, want ErrConfig", err)
	}
}
