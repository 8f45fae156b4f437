package wechat_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"image"
	"image/png"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/makiuchi-d/gozxing"
	"github.com/makiuchi-d/gozxing/qrcode"

	"github.com/wxlogin/wxlogin/internal/capture"

	"github.com/wxlogin/wxlogin/internal/wechat"
	"github.com/wxlogin/wxlogin/internal/wechat/fakewechat"
)

const apiWxaCode = "getwxacodeunlimit"

// withPages gives the fake a mini-program with these pages only.
func withPages(o *fakewechat.Options) { o.Pages = []string{"pages/index/index", "pages/scan/scan"} }

// readWxaCode decodes a fake code's PNG as a QR code and reads back its page,
// its scene and its size in pixels.
func readWxaCode(t *testing.T, b []byte) (page, scene string, size image.Point) {
	t.Helper()
	img, err := png.Decode(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("not a PNG: %v", err)
	}
	bmp, err := gozxing.NewBinaryBitmapFromImage(img)
	if err != nil {
		t.Fatalf("binarizing: %v", err)
	}
	res, err := qrcode.NewQRCodeReader().Decode(bmp, nil)
	if err != nil {
		t.Fatalf("no QR code in the image: %v", err)
	}
	query, ok := strings.CutPrefix(res.GetText(), fakewechat.WxaCodePrefix)
	if !ok {
		t.Fatalf("QR text %q does not start with %q", res.GetText(), fakewechat.WxaCodePrefix)
	}
	q, err := url.ParseQuery(query)
	if err != nil {
		t.Fatalf("QR text %q: %v", res.GetText(), err)
	}
	return q.Get("page"), q.Get("scene"), img.Bounds().Size()
}

func TestGetWxaCodeUnlimit(t *testing.T) {
	logs := &capture.Buffer{}
	e := newEnvWithFake(t, logs, withPages, nil)
	tok := mustToken(t, e, false)
	ctx := context.Background()
	const scene = "login=8f3a~c&n=42"

	img, ct, err := e.client.GetWxaCodeUnlimit(ctx, tok.Token, wechat.WxaCodeRequest{Scene: scene, Page: "pages/scan/scan", Width: 320})
	if err != nil {
		t.Fatalf("GetWxaCodeUnlimit: %v", err)
	}
	if ct != "image/png" {
		t.Errorf("content type %q, want image/png", ct)
	}
	page, gotScene, size := readWxaCode(t, img)
	if page != "pages/scan/scan" || gotScene != scene {
		t.Errorf("the code opens page %q with scene %q, want pages/scan/scan with %q", page, gotScene, scene)
	}
	if size != image.Pt(320, 320) {
		t.Errorf("image of %v, want 320×320", size)
	}

	// A trial version's page not released yet, at WeChat's default width.
	img, _, err = e.client.GetWxaCodeUnlimit(ctx, tok.Token, wechat.WxaCodeRequest{Scene: "s", Page: "pages/new/new", EnvVersion: "trial", SkipPathCheck: true})
	if err != nil {
		t.Fatalf("GetWxaCodeUnlimit of an unreleased page: %v", err)
	}
	if page, _, size := readWxaCode(t, img); page != "pages/new/new" || size != image.Pt(430, 430) {
		t.Errorf("unreleased page: page %q size %v, want pages/new/new at 430×430", page, size)
	}

	want := []fakewechat.WxaCodeRequest{
		{Scene: scene, Page: "pages/scan/scan", Width: 320, EnvVersion: "release", CheckPath: true},
		{Scene: "s", Page: "pages/new/new", Width: 430, EnvVersion: "trial", CheckPath: false},
	}
	got := e.fake.WxaCodes()
	if len(got) != len(want) || got[0] != want[0] || got[1] != want[1] {
		t.Errorf("the fake drew %+v, want %+v", got, want)
	}
	checkNoLeak(t, "log", logs.String(), tok.Token, scene)
}

func TestWxaCodeRequestNotSent(t *testing.T) {
	e := newEnv(t, nil, nil)
	tok := mustToken(t, e, false)
	cases := []struct {
		name string
		req  wechat.WxaCodeRequest
		says string // what the error must name
	}{
		{"empty scene", wechat.WxaCodeRequest{}, "empty scene"},
		{"33 characters", wechat.WxaCodeRequest{Scene: strings.Repeat("x", 33)}, "at most 32"},
		{"a space", wechat.WxaCodeRequest{Scene: "a b"}, `' '`},
		{"a percent sign", wechat.WxaCodeRequest{Scene: "a%20b"}, `'%'`},
		{"not ASCII", wechat.WxaCodeRequest{Scene: "登录"}, `'登'`},
		{"a control character", wechat.WxaCodeRequest{Scene: "a\nb"}, `'\n'`},
		{"leading slash", wechat.WxaCodeRequest{Scene: "a", Page: "/pages/scan/scan"}, "leading slash"},
		{"page with a query", wechat.WxaCodeRequest{Scene: "a", Page: "pages/scan/scan?x=1"}, "query"},
		{"width 279", wechat.WxaCodeRequest{Scene: "a", Width: 279}, "width 279"},
		{"width 1281", wechat.WxaCodeRequest{Scene: "a", Width: 1281}, "width 1281"},
		{"env_version prod", wechat.WxaCodeRequest{Scene: "a", EnvVersion: "prod"}, `env_version "prod"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := e.client.GetWxaCodeUnlimit(context.Background(), tok.Token, tc.req)
			if !errors.Is(err, wechat.ErrInvalidWxaCodeRequest) || errors.Is(err, wechat.ErrUnexpected) {
				t.Fatalf("err = %v, want ErrInvalidWxaCodeRequest", err)
			}
			if !strings.Contains(err.Error(), tc.says) || !strings.Contains(err.Error(), "not sent") {
				t.Errorf("err = %q, want it to say %q and that it was not sent", err, tc.says)
			}
		})
	}
	t.Run("empty access token", func(t *testing.T) {
		if _, _, err := e.client.GetWxaCodeUnlimit(context.Background(), "", wechat.WxaCodeRequest{Scene: "a"}); !errors.Is(err, wechat.ErrAccessToken) {
			t.Errorf("err = %v, want ErrAccessToken", err)
		}
	})
	if n := e.fake.CallsTo(apiWxaCode); n != 0 {
		t.Errorf("the fake got %d requests, want none", n)
	}
}

func TestWxaCodeErrors(t *testing.T) {
	e := newEnvWithFake(t, nil, withPages, nil)
	tok := mustToken(t, e, false)
	ctx := context.Background()
	ok := wechat.WxaCodeRequest{Scene: "a", Page: "pages/index/index"}

	t.Run("unknown page", func(t *testing.T) {
		_, _, err := e.client.GetWxaCodeUnlimit(ctx, tok.Token, wechat.WxaCodeRequest{Scene: "a", Page: "pages/gone/gone"})
		if !errors.Is(err, wechat.ErrInvalidWxaCodeRequest) || errcodeOf(err) != 41030 || !strings.Contains(err.Error(), "41030") {
			t.Errorf("err = %v, want errcode 41030, ErrInvalidWxaCodeRequest", err)
		}
	})
	t.Run("rate limited", func(t *testing.T) {
		before := e.fake.CallsTo(apiWxaCode)
		e.fake.InjectFaultFor(apiWxaCode, fakewechat.FaultRateLimit, 1)
		_, _, err := e.client.GetWxaCodeUnlimit(ctx, tok.Token, ok)
		if !errors.Is(err, wechat.ErrRateLimited) || errors.Is(err, wechat.ErrDailyQuota) || errcodeOf(err) != 45009 {
			t.Errorf("err = %v, want errcode 45009, ErrRateLimited only", err)
		}
		if n := e.fake.CallsTo(apiWxaCode) - before; n != 1 {
			t.Errorf("%d requests, want 1: a rate limit is not retried", n)
		}
	})
	t.Run("busy is retried", func(t *testing.T) {
		before := e.fake.CallsTo(apiWxaCode)
		e.fake.InjectFaultFor(apiWxaCode, fakewechat.FaultBusy, 1)
		if _, _, err := e.client.GetWxaCodeUnlimit(ctx, tok.Token, ok); err != nil {
			t.Errorf("err = %v, want the retry's code", err)
		}
		if n := e.fake.CallsTo(apiWxaCode) - before; n != 2 {
			t.Errorf("%d requests, want 2", n)
		}
	})
	// A rejected token: the caller refreshes it once and retries once.
	for _, tc := range []struct {
		name    string
		reject  func()
		errcode int
	}{
		{"expired token", func() { e.fake.RejectAccessTokens(42001, 1) }, 42001},
		{"malformed token", func() { e.fake.RejectAccessTokens(40014, 1) }, 40014},
		{"token replaced elsewhere", e.fake.InvalidateAccessTokens, 40001},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.reject()
			_, _, err := e.client.GetWxaCodeUnlimit(ctx, tok.Token, ok)
			if !errors.Is(err, wechat.ErrAccessToken) || errcodeOf(err) != tc.errcode {
				t.Fatalf("err = %v, want errcode %d, ErrAccessToken", err, tc.errcode)
			}
			checkNoLeak(t, "error", err.Error(), tok.Token)
			tok = mustToken(t, e, false)
			if _, _, err := e.client.GetWxaCodeUnlimit(ctx, tok.Token, ok); err != nil {
				t.Errorf("after a refresh: %v", err)
			}
		})
	}
}

// TestWxaCodeOddAnswers: what the client makes of answers the fake does not give.
func TestWxaCodeOddAnswers(t *testing.T) {
	jpeg := append([]byte{0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x10, 'J', 'F', 'I', 'F', 0x00}, make([]byte, 64)...)
	cases := []struct {
		name        string
		contentType string
		body        []byte
		want        error // nil: the body comes back as the image
		wantType    string
	}{
		{"a JPEG", "image/jpeg", jpeg, nil, "image/jpeg"},
		{"an error labelled as an image", "image/jpeg", []byte(`{"errcode":41030,"errmsg":"invalid page rid: 1-2-3"}`), wechat.ErrInvalidWxaCodeRequest, ""},
		{"an HTML page", "text/html", []byte("<html><body>maintenance</body></html>"), wechat.ErrUnavailable, ""},
		{"JSON without an image", "application/json", []byte(`{"errcode":0,"errmsg":"ok"}`), wechat.ErrUnavailable, ""},
		{"an image over 2 MiB", "image/png", append([]byte("\x89PNG\r\n\x1a\n"), make([]byte, 2<<20)...), wechat.ErrUnavailable, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", tc.contentType)
				w.Write(tc.body)
			}))
			t.Cleanup(ts.Close)
			c, err := wechat.New(wechat.Config{BaseURL: ts.URL, AppID: testAppID, Secret: testSecret})
			if err != nil {
				t.Fatal(err)
			}
			img, ct, err := c.GetWxaCodeUnlimit(context.Background(), "the-token", wechat.WxaCodeRequest{Scene: "a"})
			if tc.want == nil {
				if err != nil || ct != tc.wantType || !bytes.Equal(img, tc.body) {
					t.Fatalf("got %d bytes of %q, err %v; want the %d bytes as %s", len(img), ct, err, len(tc.body), tc.wantType)
				}
				return
			}
			if !errors.Is(err, tc.want) || img != nil {
				t.Fatalf("got %d bytes, err %v; want %v", len(img), err, tc.want)
			}
			checkNoLeak(t, "error", fmt.Sprint(err), "the-token")
		})
	}
}
