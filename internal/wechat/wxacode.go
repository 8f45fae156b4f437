package wechat

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
)

const apiWxaCode = "getwxacodeunlimit"

// ErrInvalidWxaCodeRequest: a mini-program code was asked with a scene,
// page, width or env_version WeChat does not accept. Either the client
// refused it before sending, or WeChat did (40097 invalid args, 40129
// invalid scene, 40169 invalid scene length, 41030 a page the mini-program
// does not have). Asking again unchanged fares no better.
var ErrInvalidWxaCodeRequest = errors.New("wechat: invalid mini-program code request")

// wxaCodeKinds: this API's refusals of the request, and 45009, which here is
// its per-minute limit rather than a daily quota.
var wxaCodeKinds = map[int]error{
	40097: ErrInvalidWxaCodeRequest,
	40129: ErrInvalidWxaCodeRequest,
	40169: ErrInvalidWxaCodeRequest,
	41030: ErrInvalidWxaCodeRequest,
	45009: ErrRateLimited,
}

// sceneSymbols are the characters besides digits and letters a scene may hold.
const sceneSymbols = "!#$&'()*+,/:;=?@-._~"

var envVersions = []string{"release", "trial", "develop"}

// WxaCodeRequest is a mini-program code to draw: scanning it opens Page,
// with Scene in the launch options.
type WxaCodeRequest struct {
	// Scene is what the page gets as its scene: 1 to 32 characters, each a
	// digit, a letter or one of !#$&'()*+,/:;=?@-._~.
	Scene string
	// Page is the page to open as app.json names it, e.g. "pages/scan/scan":
	// no leading slash and no query (parameters go in Scene). "" opens the
	// home page.
	Page string
	// Width is the code's width in pixels, 280 to 1280; 0 is WeChat's default, 430.
	Width int
	// EnvVersion is the version the code opens: "release" (or ""), "trial" or "develop".
	EnvVersion string
	// SkipPathCheck lets Page be one the released version does not have yet
	// (check_path false), as a code for a trial or develop version may need.
	SkipPathCheck bool
}

// check refuses what WeChat would refuse of the request's shape. Whether
// the page exists only WeChat knows (41030).
func (r WxaCodeRequest) check() error {
	if r.Scene == "" {
		return errors.New("empty scene")
	}
	for i, ch := range r.Scene {
		if !(ch >= '0' && ch <= '9' || ch >= 'a' && ch <= 'z' || ch >= 'A' && ch <= 'Z' || strings.ContainsRune(sceneSymbols, ch)) {
			return fmt.Errorf("scene character %q at byte %d is not a digit, a letter or one of %s", ch, i, sceneSymbols)
		}
	}
	switch {
	case len(r.Scene) > 32:
		return fmt.Errorf("scene of %d characters: at most 32", len(r.Scene))
	case strings.HasPrefix(r.Page, "/") || strings.ContainsAny(r.Page, "?#"):
		return fmt.Errorf("page %q: no leading slash and no query (parameters go in the scene)", r.Page)
	case r.Width != 0 && (r.Width < 280 || r.Width > 1280):
		return fmt.Errorf("width %d: want 280 to 1280, or 0 for 430", r.Width)
	case r.EnvVersion != "" && !slices.Contains(envVersions, r.EnvVersion):
		return fmt.Errorf("env_version %q: want release, trial or develop", r.EnvVersion)
	}
	return nil
}

// GetWxaCodeUnlimit draws a mini-program code (getwxacodeunlimit): the
// image's bytes and its content type, "image/png" or "image/jpeg", as read
// from the bytes. It is how a web page shows "scan with WeChat" that opens
// the mini-program at req.Page with req.Scene.
//
// A request WeChat would refuse for its shape (the scene's characters and
// length, the page's form, the width, the env_version) is not sent:
// ErrInvalidWxaCodeRequest, saying what is wrong. So are WeChat's refusals
// (41030 for a page the mini-program does not have). 45009, the API's
// per-minute limit, is ErrRateLimited; a rejected access token (40001,
// 40014, 42001) is ErrAccessToken, and the caller refreshes the token once
// and retries once. An answer over 2 MiB, or one that is neither an image
// nor WeChat's JSON, is ErrUnavailable. Retries and time limits are as for
// Code2Session: drawing a code twice does no harm.
func (c *Client) GetWxaCodeUnlimit(ctx context.Context, accessToken string, req WxaCodeRequest) ([]byte, string, error) {
	query, err := tokenQuery(apiWxaCode, accessToken)
	if err != nil {
		return nil, "", err
	}
	if err := req.check(); err != nil {
		return nil, "", fmt.Errorf("wechat %s: %v, not sent: %w", apiWxaCode, err, ErrInvalidWxaCodeRequest)
	}
	body, err := json.Marshal(struct {
		Scene      string `json:"scene"`
		Page       string `json:"page,omitempty"`
		CheckPath  bool   `json:"check_path"`
		EnvVersion string `json:"env_version,omitempty"`
		Width      int    `json:"width,omitempty"`
	}{req.Scene, req.Page, !req.SkipPathCheck, req.EnvVersion, req.Width})
	if err != nil {
		return nil, "", &unavailableError{api: apiWxaCode, msg: "cannot build request"}
	}
	k := &call{
		api:     apiWxaCode,
		method:  http.MethodPost,
		path:    "/wxa/getwxacodeunlimit",
		query:   query,
		body:    body,
		secrets: []string{accessToken},
		kinds:   wxaCodeKinds,
		image:   true,
	}
	code, err := do(ctx, c, k, decodeWxaCode)
	if err != nil {
		return nil, "", err
	}
	return code.image, code.contentType, nil
}

// wxaCode is getwxacodeunlimit's success answer.
type wxaCode struct {
	image       []byte
	contentType string
}

// decodeWxaCode reads getwxacodeunlimit's success answer: a PNG or a JPEG,
// whatever the Content-Type header says.
func decodeWxaCode(body []byte) (wxaCode, []slog.Attr, error) {
	ct := http.DetectContentType(body)
	if ct != "image/png" && ct != "image/jpeg" {
		return wxaCode{}, nil, errors.New("answer is neither an image nor a WeChat error")
	}
	return wxaCode{image: body, contentType: ct}, []slog.Attr{slog.String("content_type", ct), slog.Int("bytes", len(body))}, nil
}
