package fakewechat

import (
	"cmp"
	"log/slog"
	"net/http"
	"net/url"
	"regexp"
	"slices"

	"github.com/skip2/go-qrcode"
)

// WxaCodePrefix begins the text of every code the fake draws. A URL query
// with the page and the scene follows it, so that a test or a person can
// read them back: "wxlogin-fake-wxacode:page=pages%2Fscan%2Fscan&scene=t%3D42".
const WxaCodePrefix = "wxlogin-fake-wxacode:"

// maxWxaCodes is how many of the latest codes WxaCodes remembers, so that a
// long-running fake does not grow without bound.
const maxWxaCodes = 100

var (
	// wxaScene is WeChat's rule for a scene's characters: digits, letters
	// and !#$&'()*+,/:;=?@-._~.
	wxaScene = regexp.MustCompile(`^[0-9A-Za-z!#$&'()*+,/:;=?@\-._~]*$`)
	// wxaPage is a page path when Options.Pages is nil: under pages/, with no
	// leading slash and no query.
	wxaPage = regexp.MustCompile(`^pages(/[0-9A-Za-z_-]+)+$`)
)

// The mini-program versions a code may open.
var wxaEnvVersions = []string{"release", "trial", "develop"}

// WxaCodeRequest is a getwxacodeunlimit request the fake drew a code for,
// with WeChat's defaults filled in.
type WxaCodeRequest struct {
	Scene      string
	Page       string // "" opens the home page
	Width      int    // in pixels; 430 when the request gave none
	EnvVersion string // release (when the request gave none), trial or develop
	CheckPath  bool   // true when the request gave none
}

// WxaCodes are the latest getwxacodeunlimit requests the fake drew a code
// for, oldest first: the last 100 at most.
func (s *Server) WxaCodes() []WxaCodeRequest {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.wxaCodes)
}

// wxaCode serves POST /wxa/getwxacodeunlimit. It answers a PNG of a real QR
// code, about width pixels wide, whose text is WxaCodePrefix and then the
// page and the scene as a URL query. The errcodes are those of WeChat's
// table for this API: 40169 for a scene that is empty or over 32 characters,
// 40129 for a character outside its set, 41030 for a page the mini-program
// does not have (with check_path false, any page shaped like a path passes),
// 40097 for a width outside 280–1280 or an unknown env_version, and 45009
// for FaultRateLimit, WeChat's per-minute limit on this API.
func (s *Server) wxaCode(w http.ResponseWriter, r *http.Request) {
	tok := r.URL.Query().Get("access_token")
	var body struct {
		Scene      string `json:"scene"`
		Page       string `json:"page"`
		CheckPath  *bool  `json:"check_path"`
		EnvVersion string `json:"env_version"`
		Width      int    `json:"width"`
	}
	parsed := readBody(r, &body)
	s.serve(w, r, apiWxaCode, FaultNone, func(fault Fault) reply {
		s.mu.Lock()
		rep := s.checkTokenLocked(tok)
		s.mu.Unlock()
		if rep.errcode != 0 {
			return rep
		}
		if fault == FaultRateLimit {
			return fail(45009, "reach max api daily quota limit")
		}
		if rep, ok := faultReply(fault); ok {
			return rep
		}
		if !parsed {
			return fail(47001, "data format error")
		}
		req := WxaCodeRequest{
			Scene:      body.Scene,
			Page:       body.Page,
			Width:      cmp.Or(body.Width, 430),
			EnvVersion: cmp.Or(body.EnvVersion, "release"),
			CheckPath:  body.CheckPath == nil || *body.CheckPath,
		}
		if rep := s.checkWxaCode(req); rep.errcode != 0 {
			return rep
		}
		text := WxaCodePrefix + url.Values{"page": {req.Page}, "scene": {req.Scene}}.Encode()
		qr, err := qrcode.New(text, qrcode.Medium)
		if err != nil {
			return fail(-1, "system error")
		}
		png, err := qr.PNG(req.Width)
		if err != nil {
			return fail(-1, "system error")
		}
		s.mu.Lock()
		s.wxaCodes = append(s.wxaCodes, req)
		if len(s.wxaCodes) > maxWxaCodes {
			s.wxaCodes = slices.Delete(s.wxaCodes, 0, len(s.wxaCodes)-maxWxaCodes)
		}
		s.mu.Unlock()
		// The scene is left out of the log: it often names a pending login.
		return reply{png: png, attrs: []slog.Attr{
			slog.String("page", req.Page),
			slog.Int("width", req.Width),
			slog.String("env_version", req.EnvVersion),
			slog.Int("bytes", len(png)),
		}}
	})
}

// checkWxaCode checks a request as WeChat does, in its order.
func (s *Server) checkWxaCode(req WxaCodeRequest) reply {
	switch {
	case len(req.Scene) < 1 || len(req.Scene) > 32:
		return fail(40169, "invalid length for scene, or the data is not json string")
	case !wxaScene.MatchString(req.Scene):
		return fail(40129, "invalid scene")
	case !s.hasPage(req.Page, req.CheckPath):
		return fail(41030, "invalid page")
	case req.Width < 280 || req.Width > 1280:
		return fail(40097, "invalid args")
	case !slices.Contains(wxaEnvVersions, req.EnvVersion):
		return fail(40097, "invalid args")
	}
	return reply{}
}

// hasPage says whether a code may open page: the home page (""), one of
// Options.Pages, or, when the fake has no list or checkPath is off, any
// path under pages/.
func (s *Server) hasPage(page string, checkPath bool) bool {
	switch {
	case page == "", slices.Contains(s.pages, page):
		return true
	case s.pages != nil && checkPath:
		return false
	}
	return wxaPage.MatchString(page)
}
