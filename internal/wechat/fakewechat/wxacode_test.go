package fakewechat_test

import (
	"bytes"
	"encoding/json"
	"image"
	"image/png"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/makiuchi-d/gozxing"
	"github.com/makiuchi-d/gozxing/qrcode"

	"github.com/wxlogin/wxlogin/internal/wechat/fakewechat"
)

// knownPages are the pages of the fixtures' mini-program.
var knownPages = []string{"pages/index/index", "pages/scan/scan"}

// wxaAnswer is one getwxacodeunlimit answer: an image, or WeChat's JSON error.
type wxaAnswer struct {
	contentType string
	body        []byte
	errcode     int
	errmsg      string
}

// wxaCode posts body (a string is sent as is) to getwxacodeunlimit with token.
func (f *fixture) wxaCode(t *testing.T, token string, body any) wxaAnswer {
	t.Helper()
	raw, ok := body.(string)
	if !ok {
		b, _ := json.Marshal(body)
		raw = string(b)
	}
	resp, err := http.Post(f.url+"/wxa/getwxacodeunlimit?"+url.Values{"access_token": {token}}.Encode(), "application/json", strings.NewReader(raw))
	if err != nil {
		t.Fatalf("POST: %v", err)
	}
	defer resp.Body.Close()
	var buf bytes.Buffer
	buf.ReadFrom(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("HTTP status %d: %s", resp.StatusCode, buf.Bytes())
	}
	a := wxaAnswer{contentType: resp.Header.Get("Content-Type"), body: buf.Bytes()}
	if a.contentType != "image/png" {
		var e struct {
			Errcode int    `json:"errcode"`
			Errmsg  string `json:"errmsg"`
		}
		if err := json.Unmarshal(a.body, &e); err != nil {
			t.Fatalf("Content-Type %q and not JSON: %v", a.contentType, err)
		}
		if !ridSuffix.MatchString(e.Errmsg) {
			t.Errorf("errmsg %q does not end with a rid", e.Errmsg)
		}
		a.errcode, a.errmsg = e.Errcode, e.Errmsg
	}
	return a
}

// readQR decodes a PNG as a QR code: its text and its size in pixels.
func readQR(t *testing.T, b []byte) (string, image.Point) {
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
	return res.GetText(), img.Bounds().Size()
}

// readCode reads back the page and scene a fake code carries.
func readCode(t *testing.T, b []byte) (page, scene string, size image.Point) {
	t.Helper()
	text, size := readQR(t, b)
	query, ok := strings.CutPrefix(text, fakewechat.WxaCodePrefix)
	if !ok {
		t.Fatalf("QR text %q does not start with %q", text, fakewechat.WxaCodePrefix)
	}
	q, err := url.ParseQuery(query)
	if err != nil {
		t.Fatalf("QR text %q: %v", text, err)
	}
	return q.Get("page"), q.Get("scene"), size
}

func TestWxaCodeEndpoint(t *testing.T) {
	f := newFixture(t, func(o *fakewechat.Options) { o.Pages = knownPages })
	tok := f.stableToken(t, false).AccessToken
	const scene = "login=8f3a~c&x=(1)"
	f.secrets = append(f.secrets, scene) // it may name a pending login: kept out of the log

	a := f.wxaCode(t, tok, map[string]any{"scene": scene, "page": "pages/scan/scan", "width": 300, "env_version": "trial", "check_path": false})
	if a.contentType != "image/png" {
		t.Fatalf("answer %q %s, want a PNG", a.contentType, a.body)
	}
	page, gotScene, size := readCode(t, a.body)
	if page != "pages/scan/scan" || gotScene != scene {
		t.Errorf("the code carries page %q scene %q, want pages/scan/scan and %q", page, gotScene, scene)
	}
	if size != image.Pt(300, 300) {
		t.Errorf("image of %v, want 300×300", size)
	}

	// The defaults: WeChat's home page, 430 px, the released version, the path checked.
	a = f.wxaCode(t, tok, map[string]string{"scene": "a"})
	page, gotScene, size = readCode(t, a.body)
	if page != "" || gotScene != "a" || size != image.Pt(430, 430) {
		t.Errorf("defaults: page %q scene %q size %v, want \"\", \"a\", 430×430", page, gotScene, size)
	}

	want := []fakewechat.WxaCodeRequest{
		{Scene: scene, Page: "pages/scan/scan", Width: 300, EnvVersion: "trial", CheckPath: false},
		{Scene: "a", Page: "", Width: 430, EnvVersion: "release", CheckPath: true},
	}
	got := f.fake.WxaCodes()
	if len(got) != len(want) {
		t.Fatalf("WxaCodes() = %+v, want %+v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("WxaCodes()[%d] = %+v, want %+v", i, got[i], want[i])
		}
	}
	if n := f.fake.CallsTo("getwxacodeunlimit"); n != 2 {
		t.Errorf("CallsTo(getwxacodeunlimit) = %d, want 2", n)
	}
}

func TestWxaCodeRefusals(t *testing.T) {
	f := newFixture(t, func(o *fakewechat.Options) { o.Pages = knownPages })
	tok := f.stableToken(t, false).AccessToken
	every := "09azAZ!#$&'()*+,/:;=?@-._~"
	cases := []struct {
		name    string
		token   string // "" is tok
		body    any
		errcode int // 0: a code is drawn
	}{
		{"every allowed character", "", map[string]any{"scene": every}, 0},
		{"32 characters", "", map[string]any{"scene": strings.Repeat("x", 32)}, 0},
		{"unknown token", "not-a-token", map[string]any{"scene": "a"}, 40001},
		{"body not JSON", "", "scene=a", 47001},
		{"width not a number", "", `{"scene":"a","width":"430"}`, 47001},
		{"no scene", "", map[string]any{"page": "pages/scan/scan"}, 40169},
		{"33 characters", "", map[string]any{"scene": strings.Repeat("x", 33)}, 40169},
		{"a space", "", map[string]any{"scene": "a b"}, 40129},
		{"a percent sign", "", map[string]any{"scene": "a%20b"}, 40129},
		{"a quote", "", map[string]any{"scene": `a"b`}, 40129},
		{"not ASCII", "", map[string]any{"scene": "é"}, 40129},
		{"unknown page", "", map[string]any{"scene": "a", "page": "pages/other/other"}, 41030},
		{"leading slash", "", map[string]any{"scene": "a", "page": "/pages/scan/scan"}, 41030},
		{"page with a query", "", map[string]any{"scene": "a", "page": "pages/scan/scan?x=1"}, 41030},
		{"unknown page, check_path false", "", map[string]any{"scene": "a", "page": "pages/new/new", "check_path": false}, 0},
		{"leading slash, check_path false", "", map[string]any{"scene": "a", "page": "/pages/new/new", "check_path": false}, 41030},
		{"width 280", "", map[string]any{"scene": "a", "width": 280}, 0},
		{"width 1280", "", map[string]any{"scene": "a", "width": 1280}, 0},
		{"width 279", "", map[string]any{"scene": "a", "width": 279}, 40097},
		{"width 1281", "", map[string]any{"scene": "a", "width": 1281}, 40097},
		{"env_version develop", "", map[string]any{"scene": "a", "env_version": "develop"}, 0},
		{"env_version prod", "", map[string]any{"scene": "a", "env_version": "prod"}, 40097},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			token := tc.token
			if token == "" {
				token = tok
			}
			before := len(f.fake.WxaCodes())
			a := f.wxaCode(t, token, tc.body)
			drawn := len(f.fake.WxaCodes()) - before
			if tc.errcode == 0 {
				if a.contentType != "image/png" || drawn != 1 {
					t.Fatalf("answer %q %s (%d codes drawn), want a code", a.contentType, a.body, drawn)
				}
				readQR(t, a.body)
				return
			}
			if a.errcode != tc.errcode || drawn != 0 {
				t.Errorf("answer %s (%d codes drawn), want errcode %d", a.body, drawn, tc.errcode)
			}
		})
	}

	t.Run("expired token", func(t *testing.T) {
		f.fake.RejectAccessTokens(42001, 1)
		if a := f.wxaCode(t, tok, map[string]any{"scene": "a"}); a.errcode != 42001 {
			t.Errorf("answer %s, want 42001", a.body)
		}
	})
}

// TestWxaCodeAnyPage: without Options.Pages, any path under pages/ is a page.
func TestWxaCodeAnyPage(t *testing.T) {
	f := newFixture(t)
	tok := f.stableToken(t, false).AccessToken
	for page, errcode := range map[string]int{
		"pages/anything/here": 0,
		"pages/a":             0,
		"pages":               41030,
		"pages/":              41030,
		"packageA/pages/x":    41030,
		"/pages/x":            41030,
	} {
		if a := f.wxaCode(t, tok, map[string]any{"scene": "a", "page": page}); a.errcode != errcode {
			t.Errorf("page %q: answer %q %.80q, want errcode %d", page, a.contentType, a.body, errcode)
		}
	}
}

func TestWxaCodeFaults(t *testing.T) {
	f := newFixture(t)
	tok := f.stableToken(t, false).AccessToken
	req := map[string]any{"scene": "a"}

	f.fake.InjectFaultFor("getwxacodeunlimit", fakewechat.FaultRateLimit, 1)
	if a := f.wxaCode(t, tok, req); a.errcode != 45009 {
		t.Errorf("rate limited: %s, want 45009", a.body)
	}
	f.fake.InjectFaultFor("getwxacodeunlimit", fakewechat.FaultBusy, 1)
	if a := f.wxaCode(t, tok, req); a.errcode != -1 {
		t.Errorf("busy: %s, want -1", a.body)
	}
	f.fake.InjectFaultFor("getwxacodeunlimit", fakewechat.FaultTruncatedJSON, 1)
	if a := f.wxaCode(t, tok, req); a.contentType != "image/png" {
		t.Errorf("truncated: Content-Type %q, want image/png", a.contentType)
	} else if _, err := png.Decode(bytes.NewReader(a.body)); err == nil {
		t.Error("truncated: the PNG decodes whole")
	}
	// A token error comes before the fault, as for the other APIs.
	f.fake.InjectFaultFor("getwxacodeunlimit", fakewechat.FaultRateLimit, 1)
	if a := f.wxaCode(t, "not-a-token", req); a.errcode != 40001 {
		t.Errorf("bad token under a fault: %s, want 40001", a.body)
	}
	if a := f.wxaCode(t, tok, req); a.errcode != 0 {
		t.Errorf("after the faults: %s, want a code", a.body)
	}
	if n := f.fake.CallsTo("getwxacodeunlimit"); n != 5 {
		t.Errorf("CallsTo(getwxacodeunlimit) = %d, want 5", n)
	}
}
