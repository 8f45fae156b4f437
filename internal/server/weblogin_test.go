package server_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"image"
	_ "image/png"
	"net/http"
	"net/netip"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/makiuchi-d/gozxing"
	"github.com/makiuchi-d/gozxing/qrcode"

	"github.com/wxlogin/wxlogin/ent/auditevent"
	"github.com/wxlogin/wxlogin/ent/session"
	"github.com/wxlogin/wxlogin/ent/weblogin"
	"github.com/wxlogin/wxlogin/internal/auth"
	"github.com/wxlogin/wxlogin/internal/testdb"
	"github.com/wxlogin/wxlogin/internal/wechat/fakewechat"
)

// The web page of these tests: a desktop browser behind a proxy of ours, which says
// where it came from.
const (
	browserUA   = "Mozilla/5.0 (Macintosh) WebLoginTest"
	browserIP   = "203.0.113.7"
	webLoginDoc = `mutation { startWebLogin { id secret expiresAt image } }`
	pollDoc     = `query($id: ID!, $secret: String!) { webLogin(id: $id, secret: $secret) { state expiresAt session { token expiresAt user { id openid } } } }`
	watchDoc    = `subscription($id: ID!, $secret: String!) { webLogin(id: $id, secret: $secret) { state session { token user { id } } } }`
	requestDoc  = `id state createdAt expiresAt userAgent ip`
)

var carol = fakewechat.User{OpenID: "oCarol0000000000000000000001"}

// withWebLogin sets the web login's policy, and trusts the loopback proxy, so that the
// browser's address is browserIP.
func withWebLogin(p auth.Policy) envOption {
	return func(e *env) {
		e.policy = p
		e.trusted = []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}
	}
}

type webLoginStart struct {
	ID        string    `json:"id"`
	Secret    string    `json:"secret"`
	ExpiresAt time.Time `json:"expiresAt"`
	Image     string    `json:"image"`
}

type webLoginStatus struct {
	State     string    `json:"state"`
	ExpiresAt time.Time `json:"expiresAt"`
	Session   *struct {
		Token     string    `json:"token"`
		ExpiresAt time.Time `json:"expiresAt"`
		User      struct {
			ID     string `json:"id"`
			Openid string `json:"openid"`
		} `json:"user"`
	} `json:"session"`
}

type webLoginRequest struct {
	ID        string    `json:"id"`
	State     string    `json:"state"`
	CreatedAt time.Time `json:"createdAt"`
	ExpiresAt time.Time `json:"expiresAt"`
	UserAgent *string   `json:"userAgent"`
	IP        *string   `json:"ip"`
}

// browser sends a document to instance i as the web page does: no token, a desktop
// browser's User-Agent, from ip through the trusted proxy.
func (e *env) browser(i int, ip, query string, vars map[string]any) gqlResult {
	e.t.Helper()
	body, _ := json.Marshal(map[string]any{"query": query, "variables": vars})
	req, _ := http.NewRequest(http.MethodPost, e.instances[i].URL+"/graphql", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", browserUA)
	req.Header.Set("X-Forwarded-For", ip)
	return e.send(req)
}

// startWebLogin starts a web login from the browser on instance i.
func (e *env) startWebLogin(i int) webLoginStart {
	e.t.Helper()
	r := e.browser(i, browserIP, webLoginDoc, nil)
	if r.Code() != "" {
		e.t.Fatalf("startWebLogin: %s %v", r.Code(), r.Errors)
	}
	var s webLoginStart
	jsonUnmarshal(e.t, r.Data["startWebLogin"], &s)
	return s
}

// pollWebLogin asks instance i where the attempt stands, as the browser does; on an
// error it returns the error's code.
func (e *env) pollWebLogin(i int, id, secret string) (webLoginStatus, gqlResult) {
	e.t.Helper()
	r := e.browser(i, browserIP, pollDoc, map[string]any{"id": id, "secret": secret})
	var st webLoginStatus
	if r.Code() == "" {
		jsonUnmarshal(e.t, r.Data["webLogin"], &st)
	}
	return st, r
}

// mustPoll polls and fails the test on an error.
func (e *env) mustPoll(i int, id, secret string) webLoginStatus {
	e.t.Helper()
	st, r := e.pollWebLogin(i, id, secret)
	if r.Code() != "" {
		e.t.Fatalf("webLogin: %s %v", r.Code(), r.Errors)
	}
	return st
}

// moveWebLogin calls scanWebLogin, confirmWebLogin or cancelWebLogin (op) on instance i
// as the mini-program holding token does.
func (e *env) moveWebLogin(i int, token, op, id string) (webLoginRequest, gqlResult) {
	e.t.Helper()
	r := e.post(i, token, `mutation($id: ID!) { `+op+`(id: $id) { `+requestDoc+` } }`, map[string]any{"id": id})
	var req webLoginRequest
	if r.Code() == "" {
		jsonUnmarshal(e.t, r.Data[op], &req)
	}
	return req, r
}

// mustMove moves the attempt and fails the test on an error.
func (e *env) mustMove(i int, token, op, id string) webLoginRequest {
	e.t.Helper()
	req, r := e.moveWebLogin(i, token, op, id)
	if r.Code() != "" {
		e.t.Fatalf("%s: %s %v", op, r.Code(), r.Errors)
	}
	return req
}

// readWxaCode decodes the QR code of a data: URL's PNG and reads back the page and
// scene the fake WeChat drew into it.
func readWxaCode(t *testing.T, dataURL string) (page, scene string) {
	t.Helper()
	b64, ok := strings.CutPrefix(dataURL, "data:image/png;base64,")
	if !ok {
		t.Fatalf("image %.40q… is not a data: URL of a PNG", dataURL)
	}
	raw, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		t.Fatalf("image: %v", err)
	}
	img, _, err := image.Decode(bytes.NewReader(raw))
	if err != nil {
		t.Fatalf("image does not decode: %v", err)
	}
	bmp, err := gozxing.NewBinaryBitmapFromImage(img)
	if err != nil {
		t.Fatal(err)
	}
	// The fake draws the bare code with its quiet zone; without the hint, gozxing's
	// detector misreads about one code in a thousand.
	res, err := qrcode.NewQRCodeReader().Decode(bmp, map[gozxing.DecodeHintType]any{gozxing.DecodeHintType_PURE_BARCODE: true})
	if err != nil {
		t.Fatalf("no QR code in the image: %v", err)
	}
	query, ok := strings.CutPrefix(res.GetText(), fakewechat.WxaCodePrefix)
	if !ok {
		t.Fatalf("QR text %q is not the fake WeChat's code", res.GetText())
	}
	q, err := url.ParseQuery(query)
	if err != nil {
		t.Fatal(err)
	}
	return q.Get("page"), q.Get("scene")
}

// webSessionInfo is a session as the sessions list shows it, with web.
type webSessionInfo struct {
	ID        string  `json:"id"`
	UserAgent *string `json:"userAgent"`
	Current   bool    `json:"current"`
	Web       bool    `json:"web"`
}

// webSessions lists the token's sessions, with web.
func (e *env) webSessions(token string) []webSessionInfo {
	e.t.Helper()
	r := e.post(0, token, `{ sessions { id userAgent current web } }`, nil)
	if r.Code() != "" {
		e.t.Fatalf("sessions: %s", r.Code())
	}
	var out []webSessionInfo
	jsonUnmarshal(e.t, r.Data["sessions"], &out)
	return out
}

// webLoginRows counts the attempts in the database.
func (e *env) webLoginRows() int {
	e.t.Helper()
	return e.db.WebLogin.Query().CountX(context.Background())
}

var hex32 = regexp.MustCompile(`^[0-9a-f]{32}$`)

// TestWebLoginFlow: a person opens the web page, scans its code with WeChat, confirms in
// the mini-program, and the page is logged in as the same user, with a web session they
// see in their list and can end from the phone; nothing secret reaches the log.
func TestWebLoginFlow(t *testing.T) {
	testdb.Run(t, func(t *testing.T, b testdb.Backend) {
		const page = "pages/web/confirm"
		e := newEnv(t, b, withWebLogin(auth.Policy{WebLoginPage: page}))
		before := e.clock.Now()
		start := e.startWebLogin(0)
		if !hex32.MatchString(start.ID) {
			t.Errorf("id %q, want 32 hexadecimal characters (the code's scene)", start.ID)
		}
		if len(start.Secret) < 32 {
			t.Errorf("secret %d characters, want a long random one", len(start.Secret))
		}
		if d := start.ExpiresAt.Sub(before); d < auth.DefaultWebLoginTTL-time.Minute || d > auth.DefaultWebLoginTTL+time.Minute {
			t.Errorf("expiresAt is %s away, want about %s", d, auth.DefaultWebLoginTTL)
		}
		if gotPage, scene := readWxaCode(t, start.Image); gotPage != page || scene != start.ID {
			t.Errorf("the code opens page %q with scene %q, want %q with the id %q", gotPage, scene, page, start.ID)
		}
		if st := e.mustPoll(0, start.ID, start.Secret); st.State != "WAITING" || st.Session != nil {
			t.Errorf("before the scan: %+v, want WAITING without a session", st)
		}

		mini := e.mustLogin(0, e.fake.IssueCode(alice))
		req := e.mustMove(0, mini.Token, "scanWebLogin", start.ID)
		if req.ID != start.ID || req.State != "SCANNED" || strOrNil(req.UserAgent) != browserUA || strOrNil(req.IP) != browserIP {
			t.Errorf("scan = %+v (ua %s, ip %s), want SCANNED with the browser's User-Agent %q and address %s",
				req, strOrNil(req.UserAgent), strOrNil(req.IP), browserUA, browserIP)
		}
		if st := e.mustPoll(0, start.ID, start.Secret); st.State != "SCANNED" || st.Session != nil {
			t.Errorf("after the scan: %+v, want SCANNED without a session", st)
		}
		if req := e.mustMove(0, mini.Token, "confirmWebLogin", start.ID); req.State != "CONFIRMED" {
			t.Errorf("confirm = %+v, want CONFIRMED", req)
		}

		st := e.mustPoll(0, start.ID, start.Secret)
		if st.State != "CONFIRMED" || st.Session == nil {
			t.Fatalf("first poll after the confirmation: %+v, want CONFIRMED with the session", st)
		}
		web := st.Session
		if web.User.ID != mini.User.ID || web.User.Openid != alice.OpenID || web.Token == "" || web.Token == mini.Token {
			t.Errorf("web session of %+v, want a new token of the scanner %s", web.User, mini.User.ID)
		}
		if d := web.ExpiresAt.Sub(e.clock.Now()); d < auth.DefaultWebIdleTimeout-time.Minute || d > auth.DefaultWebIdleTimeout+time.Minute {
			t.Errorf("the web session's expiresAt is %s away, want about the web idle timeout %s", d, auth.DefaultWebIdleTimeout)
		}
		if u, c := e.me(0, web.Token); c != "" || u.ID != mini.User.ID {
			t.Errorf("me with the web token = %+v %s, want %s", u, c, mini.User.ID)
		}
		list := e.webSessions(mini.Token)
		if len(list) != 2 {
			t.Fatalf("sessions = %+v, want the mini-program's and the web one", list)
		}
		var webID string
		for _, s := range list {
			switch {
			case s.Current && s.Web:
				t.Errorf("the mini-program's session is listed as web: %+v", s)
			case !s.Current && (!s.Web || strOrNil(s.UserAgent) != browserUA):
				t.Errorf("the web session is listed as %+v (ua %s), want web with the browser's User-Agent", s, strOrNil(s.UserAgent))
			case !s.Current:
				webID = s.ID
			}
		}
		if st := e.mustPoll(0, start.ID, start.Secret); st.State != "CONFIRMED" || st.Session != nil {
			t.Errorf("second poll: %+v, want CONFIRMED and no session: the token is handed out once", st)
		}

		if r := e.post(0, mini.Token, `mutation($id: ID!) { revokeSession(id: $id) }`, map[string]any{"id": webID}); r.Code() != "" || string(r.Data["revokeSession"]) != "true" {
			t.Errorf("revokeSession of the web session: %s %v", r.Data["revokeSession"], r.Errors)
		}
		if _, c := e.me(0, web.Token); c != "UNAUTHENTICATED" {
			t.Errorf("me with the revoked web token: %q, want UNAUTHENTICATED", c)
		}
		if _, c := e.me(0, mini.Token); c != "" {
			t.Errorf("the mini-program's session after revoking the web one: %q", c)
		}

		var events []auditevent.Event
		for _, ev := range e.audit() {
			if ev.Reason != nil && *ev.Reason == start.ID {
				events = append(events, ev.Event)
			}
		}
		want := []auditevent.Event{auditevent.EventWebLoginStarted, auditevent.EventWebLoginScanned, auditevent.EventWebLoginConfirmed, auditevent.EventWebLoginSucceeded}
		if !slices.Equal(events, want) {
			t.Errorf("audit trail of the attempt = %v, want %v", events, want)
		}
		logs := e.logs.String()
		for what, s := range map[string]string{"the secret": start.Secret, "the web token": web.Token} {
			if strings.Contains(logs, s) {
				t.Errorf("%s is in the server's log", what)
			}
		}
	})
}

// TestWebLoginSessionLifetime: a web session ends after the web idle timeout unused, and
// at the web lifetime however often it is used, while the phone's session lives on.
func TestWebLoginSessionLifetime(t *testing.T) {
	testdb.Run(t, func(t *testing.T, b testdb.Backend) {
		e := newEnv(t, b, withWebLogin(auth.Policy{}))
		mini := e.mustLogin(0, e.fake.IssueCode(alice))
		webLogin := func() string {
			t.Helper()
			start := e.startWebLogin(0)
			e.mustMove(0, mini.Token, "scanWebLogin", start.ID)
			e.mustMove(0, mini.Token, "confirmWebLogin", start.ID)
			st := e.mustPoll(0, start.ID, start.Secret)
			if st.Session == nil {
				t.Fatalf("no session: %+v", st)
			}
			return st.Session.Token
		}

		idle := webLogin()
		e.clock.Advance(auth.DefaultWebIdleTimeout - time.Minute)
		if _, c := e.me(0, idle); c != "" {
			t.Errorf("unused for the web idle timeout less a minute: %q, want it live", c)
		}
		e.clock.Advance(auth.DefaultWebIdleTimeout + time.Minute)
		if _, c := e.me(0, idle); c != "UNAUTHENTICATED" {
			t.Errorf("unused for the web idle timeout and a minute: %q, want UNAUTHENTICATED", c)
		}

		busy := webLogin()
		step := auth.DefaultWebIdleTimeout - 10*time.Minute
		n := int(auth.DefaultWebSessionTTL / step)
		for i := range n {
			e.clock.Advance(step)
			if _, c := e.me(0, busy); c != "" {
				t.Fatalf("used every %s, at use %d: %q, want it live", step, i+1, c)
			}
		}
		e.clock.Advance(auth.DefaultWebSessionTTL - time.Duration(n)*step + time.Minute)
		if _, c := e.me(0, busy); c != "UNAUTHENTICATED" {
			t.Errorf("used every %s, past the web lifetime %s: %q, want UNAUTHENTICATED", step, auth.DefaultWebSessionTTL, c)
		}
		if _, c := e.me(0, mini.Token); c != "" {
			t.Errorf("the phone's session after its web sessions ended: %q, want it live", c)
		}
	})
}

// TestWebLoginCancel: cancelling in the mini-program tells the page, which never gets a
// session, and the attempt cannot be confirmed after.
func TestWebLoginCancel(t *testing.T) {
	testdb.Run(t, func(t *testing.T, b testdb.Backend) {
		e := newEnv(t, b, withWebLogin(auth.Policy{}))
		start := e.startWebLogin(0)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second) // a guard
		defer cancel()
		s := e.subscribe(ctx, 0, start.ID, start.Secret)
		s.nextStatus() // WAITING
		mini := e.mustLogin(0, e.fake.IssueCode(alice))
		e.mustMove(0, mini.Token, "scanWebLogin", start.ID)
		s.nextStatus() // SCANNED
		if req := e.mustMove(0, mini.Token, "cancelWebLogin", start.ID); req.State != "CANCELLED" {
			t.Errorf("cancel = %+v, want CANCELLED", req)
		}
		if st := s.nextStatus(); st.State != "CANCELLED" || st.Session != nil {
			t.Errorf("the page's stream after the cancel: %+v, want CANCELLED without a session", st)
		}
		if event, data := s.next(); event != "complete" {
			t.Errorf("the stream after CANCELLED: %q %s, want complete", event, data)
		}
		for i := range 2 {
			if st := e.mustPoll(0, start.ID, start.Secret); st.State != "CANCELLED" || st.Session != nil {
				t.Errorf("poll %d after the cancel: %+v, want CANCELLED without a session", i+1, st)
			}
		}
		if _, r := e.moveWebLogin(0, mini.Token, "confirmWebLogin", start.ID); r.Code() != "BAD_USER_INPUT" {
			t.Errorf("confirm after the cancel: %q, want BAD_USER_INPUT", r.Code())
		}
		if st := e.mustPoll(0, start.ID, start.Secret); st.State != "CANCELLED" || st.Session != nil {
			t.Errorf("after a confirm of the cancelled attempt: %+v, want CANCELLED without a session", st)
		}
		if n := e.db.Session.Query().Where(session.Web(true)).CountX(context.Background()); n != 0 {
			t.Errorf("%d web sessions after a cancelled web login", n)
		}
	})
}

// TestWebLoginExpiry: a code left too long can no longer be scanned or confirmed, the
// page says so, and a confirmation whose session the page did not take in time logs no
// one in.
func TestWebLoginExpiry(t *testing.T) {
	testdb.Run(t, func(t *testing.T, b testdb.Backend) {
		const ttl = 2 * time.Minute
		e := newEnv(t, b, withWebLogin(auth.Policy{WebLoginTTL: ttl}))
		mini := e.mustLogin(0, e.fake.IssueCode(alice))
		before := e.clock.Now()
		left := e.startWebLogin(0) // nobody scans it
		if d := left.ExpiresAt.Sub(before); d < ttl-time.Minute/2 || d > ttl+time.Minute/2 {
			t.Errorf("expiresAt is %s away, want about the policy's %s", d, ttl)
		}
		late := e.startWebLogin(0) // confirmed, its session never taken
		e.mustMove(0, mini.Token, "scanWebLogin", late.ID)
		e.mustMove(0, mini.Token, "confirmWebLogin", late.ID)

		e.clock.Advance(ttl - 5*time.Second)
		if st := e.mustPoll(0, left.ID, left.Secret); st.State != "WAITING" {
			t.Errorf("just before the end: %s, want WAITING", st.State)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second) // a guard
		defer cancel()
		s := e.subscribe(ctx, 0, left.ID, left.Secret)
		s.nextStatus() // WAITING
		e.clock.Advance(10 * time.Second)
		if st := s.nextStatus(); st.State != "EXPIRED" || st.Session != nil {
			t.Errorf("the page's stream after the end: %+v, want EXPIRED", st)
		}
		if event, data := s.next(); event != "complete" {
			t.Errorf("the stream after EXPIRED: %q %s, want complete", event, data)
		}
		for name, a := range map[string]webLoginStart{"unscanned": left, "confirmed, session not taken": late} {
			if st := e.mustPoll(0, a.ID, a.Secret); st.State != "EXPIRED" || st.Session != nil {
				t.Errorf("%s, after the end: %+v, want EXPIRED without a session", name, st)
			}
		}
		for _, op := range []string{"scanWebLogin", "confirmWebLogin"} {
			_, r := e.moveWebLogin(0, mini.Token, op, left.ID)
			if r.Code() != "BAD_USER_INPUT" || !strings.Contains(r.Errors[0].Message, "expired") {
				t.Errorf("%s after the end: %q %v, want BAD_USER_INPUT saying it expired", op, r.Code(), r.Errors)
			}
		}
		if n := e.db.Session.Query().Where(session.Web(true)).CountX(context.Background()); n != 0 {
			t.Errorf("%d web sessions after web logins that expired", n)
		}
	})
}

// TestWebLoginRefusals: an attempt is confirmed once, only by the person who scanned it,
// only with a login; ids that name no attempt are refused.
func TestWebLoginRefusals(t *testing.T) {
	testdb.Run(t, func(t *testing.T, b testdb.Backend) {
		e := newEnv(t, b, withWebLogin(auth.Policy{}))
		start := e.startWebLogin(0)
		a := e.mustLogin(0, e.fake.IssueCode(alice))
		other := e.mustLogin(0, e.fake.IssueCode(carol))

		for _, op := range []string{"scanWebLogin", "confirmWebLogin"} {
			if _, r := e.moveWebLogin(0, "", op, start.ID); r.Code() != "UNAUTHENTICATED" {
				t.Errorf("%s without a token: %q, want UNAUTHENTICATED", op, r.Code())
			}
		}
		for name, id := range map[string]string{
			"unknown":           "0123456789abcdef0123456789abcdef",
			"malformed":         "not-a-web-login",
			"empty":             "",
			"33 hex characters": start.ID + "0",
		} {
			for _, op := range []string{"scanWebLogin", "confirmWebLogin", "cancelWebLogin"} {
				if _, r := e.moveWebLogin(0, a.Token, op, id); r.Code() != "BAD_USER_INPUT" {
					t.Errorf("%s of an %s id: %q, want BAD_USER_INPUT", op, name, r.Code())
				}
			}
		}

		e.mustMove(0, a.Token, "scanWebLogin", start.ID)
		for _, op := range []string{"scanWebLogin", "confirmWebLogin", "cancelWebLogin"} {
			if _, r := e.moveWebLogin(0, other.Token, op, start.ID); r.Code() != "BAD_USER_INPUT" {
				t.Errorf("%s by another user of an attempt alice scanned: %q, want BAD_USER_INPUT", op, r.Code())
			}
		}
		if st := e.mustPoll(0, start.ID, start.Secret); st.State != "SCANNED" {
			t.Errorf("after the other user's tries: %s, want SCANNED still", st.State)
		}
		e.mustMove(0, a.Token, "confirmWebLogin", start.ID)
		for name, tok := range map[string]string{"the same user": a.Token, "another user": other.Token} {
			if _, r := e.moveWebLogin(0, tok, "confirmWebLogin", start.ID); r.Code() != "BAD_USER_INPUT" {
				t.Errorf("a second confirmation by %s: %q, want BAD_USER_INPUT", name, r.Code())
			}
		}
		st := e.mustPoll(0, start.ID, start.Secret)
		if st.Session == nil || st.Session.User.ID != a.User.ID {
			t.Fatalf("the page's session: %+v, want alice's", st)
		}
		if _, r := e.moveWebLogin(0, a.Token, "confirmWebLogin", start.ID); r.Code() != "BAD_USER_INPUT" {
			t.Errorf("a confirmation after the session was taken: %q, want BAD_USER_INPUT", r.Code())
		}
		if n := e.db.Session.Query().Where(session.Web(true)).CountX(context.Background()); n != 1 {
			t.Errorf("%d web sessions, want the one", n)
		}
	})
}

// TestWebLoginWrongSecret: someone who saw the code (and so the id) but has not the
// secret learns nothing and takes nothing, by query or subscription; the page holding
// the secret still logs in.
func TestWebLoginWrongSecret(t *testing.T) {
	testdb.Run(t, func(t *testing.T, b testdb.Backend) {
		e := newEnv(t, b, withWebLogin(auth.Policy{}))
		start := e.startWebLogin(0)
		another := e.startWebLogin(0)
		wrong := map[string]string{"made up": "not-the-secret", "another attempt's": another.Secret, "empty": ""}
		refused := func(when string) {
			t.Helper()
			for name, secret := range wrong {
				st, r := e.pollWebLogin(0, start.ID, secret)
				if r.Code() != "BAD_USER_INPUT" || st.State != "" || len(r.Data) != 0 && string(r.Data["webLogin"]) != "null" {
					t.Errorf("%s, a poll with a wrong secret (%s): %q %s, want BAD_USER_INPUT and no state", when, name, r.Code(), r.Data["webLogin"])
				}
			}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			s := e.subscribe(ctx, 0, start.ID, "not-the-secret")
			event, data := s.next()
			var resp gqlResult
			jsonUnmarshal(t, data, &resp)
			if event != "next" || resp.Code() != "BAD_USER_INPUT" || len(resp.Data) != 0 && string(resp.Data["webLogin"]) != "null" {
				t.Errorf("%s, a subscription with a wrong secret: %s %s, want BAD_USER_INPUT and no state", when, event, data)
			}
			if event, _ := s.next(); event != "complete" {
				t.Errorf("%s, the refused subscription goes on with %q, want complete", when, event)
			}
		}
		refused("waiting")
		mini := e.mustLogin(0, e.fake.IssueCode(alice))
		e.mustMove(0, mini.Token, "scanWebLogin", start.ID)
		e.mustMove(0, mini.Token, "confirmWebLogin", start.ID)
		refused("confirmed")
		st := e.mustPoll(0, start.ID, start.Secret)
		if st.State != "CONFIRMED" || st.Session == nil || st.Session.User.ID != mini.User.ID {
			t.Errorf("the right secret after the wrong ones: %+v, want CONFIRMED with alice's session", st)
		}
	})
}

// TestWebLoginSessionHandedOutOnce: however many polls of the page (or of anyone holding
// the secret) arrive at once after the confirmation, on whichever instance, one of them
// gets the session, and one web session exists.
func TestWebLoginSessionHandedOutOnce(t *testing.T) {
	testdb.Run(t, func(t *testing.T, b testdb.Backend) {
		e := newEnv(t, b, withWebLogin(auth.Policy{}))
		e.addInstance()
		start := e.startWebLogin(0)
		mini := e.mustLogin(1, e.fake.IssueCode(alice))
		e.mustMove(1, mini.Token, "scanWebLogin", start.ID)
		e.mustMove(1, mini.Token, "confirmWebLogin", start.ID)

		const polls = 8
		answers := make([]gqlResult, polls)
		var wg sync.WaitGroup
		for i := range polls {
			wg.Go(func() {
				answers[i] = e.browser(i%2, browserIP, pollDoc, map[string]any{"id": start.ID, "secret": start.Secret})
			})
		}
		wg.Wait()
		var tokens []string
		for i, r := range answers {
			var st webLoginStatus
			if r.Code() != "" || json.Unmarshal(r.Data["webLogin"], &st) != nil || st.State != "CONFIRMED" {
				t.Errorf("poll %d: %q %s, want CONFIRMED", i+1, r.Code(), r.Data["webLogin"])
				continue
			}
			if st.Session != nil {
				tokens = append(tokens, st.Session.Token)
			}
		}
		if len(tokens) != 1 {
			t.Errorf("%d of %d concurrent polls got a session, want exactly 1", len(tokens), polls)
		}
		if n := e.db.Session.Query().Where(session.Web(true)).CountX(context.Background()); n != 1 {
			t.Errorf("%d web sessions, want 1", n)
		}
	})
}

// TestWebLoginOneScanner: two people who scan the same code at once, through two
// instances, cannot both claim it: one is asked to confirm, the other is refused.
func TestWebLoginOneScanner(t *testing.T) {
	testdb.Run(t, func(t *testing.T, b testdb.Backend) {
		e := newEnv(t, b, withWebLogin(auth.Policy{}))
		e.addInstance()
		for round := range 5 {
			start := e.startWebLogin(0)
			tokens := []string{e.mustLogin(0, e.fake.IssueCode(alice)).Token, e.mustLogin(1, e.fake.IssueCode(carol)).Token}
			answers := make([]gqlResult, 2)
			var wg sync.WaitGroup
			for i := range 2 {
				wg.Go(func() {
					answers[i] = e.post(i, tokens[i], `mutation($id: ID!) { scanWebLogin(id: $id) { state } }`, map[string]any{"id": start.ID})
				})
			}
			wg.Wait()
			codes := []string{answers[0].Code(), answers[1].Code()}
			slices.Sort(codes)
			if !slices.Equal(codes, []string{"", "BAD_USER_INPUT"}) {
				t.Errorf("round %d, two scans at once: %q, want one accepted and one BAD_USER_INPUT", round+1, codes)
			}
		}
	})
}

// sseStream is a subscription's Server-Sent Events as the browser reads them.
type sseStream struct {
	t  testing.TB
	sc *bufio.Scanner
}

// subscribe follows the attempt over Server-Sent Events on instance i, as the page
// does; ctx bounds the whole stream.
func (e *env) subscribe(ctx context.Context, i int, id, secret string) *sseStream {
	t := e.t
	t.Helper()
	body, _ := json.Marshal(map[string]any{"query": watchDoc, "variables": map[string]any{"id": id, "secret": secret}})
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, e.instances[i].URL+"/graphql", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "text/event-stream")
	req.Header.Set("User-Agent", browserUA)
	req.Header.Set("X-Forwarded-For", browserIP)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("subscription: %v", err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	if ct := resp.Header.Get("Content-Type"); resp.StatusCode != http.StatusOK || !strings.HasPrefix(ct, "text/event-stream") {
		t.Fatalf("subscription: status %d, Content-Type %q, want 200 and text/event-stream", resp.StatusCode, ct)
	}
	return &sseStream{t: t, sc: bufio.NewScanner(resp.Body)}
}

// next returns the next event's name and data, past comments and keep-alives.
func (s *sseStream) next() (event string, data []byte) {
	s.t.Helper()
	for s.sc.Scan() {
		line := s.sc.Text()
		switch {
		case line == "":
			if event != "" {
				return event, data
			}
		case strings.HasPrefix(line, ":"): // a comment: gqlgen's opening and its pings
		case strings.HasPrefix(line, "event:"):
			event = strings.TrimSpace(strings.TrimPrefix(line, "event:"))
		case strings.HasPrefix(line, "data:"):
			data = append(data, strings.TrimSpace(strings.TrimPrefix(line, "data:"))...)
		}
	}
	if event != "" {
		return event, data
	}
	s.t.Fatalf("the stream ended before the next event: %v", s.sc.Err())
	return "", nil
}

// nextStatus reads the next event, which must be a status.
func (s *sseStream) nextStatus() webLoginStatus {
	s.t.Helper()
	event, data := s.next()
	var resp struct {
		Data struct {
			WebLogin webLoginStatus `json:"webLogin"`
		} `json:"data"`
		Errors []gqlError `json:"errors"`
	}
	jsonUnmarshal(s.t, data, &resp)
	if event != "next" || len(resp.Errors) != 0 {
		s.t.Fatalf("event %q %s, want next with a status", event, data)
	}
	return resp.Data.WebLogin
}

// TestWebLoginSubscriptionAcrossInstances: the page waits on one instance while the
// phone confirms through another, and the page's stream says each step and hands over
// the session.
func TestWebLoginSubscriptionAcrossInstances(t *testing.T) {
	testdb.Run(t, func(t *testing.T, b testdb.Backend) {
		e := newEnv(t, b, withWebLogin(auth.Policy{}))
		e.addInstance()
		start := e.startWebLogin(0)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second) // a guard
		defer cancel()
		s := e.subscribe(ctx, 0, start.ID, start.Secret)
		if st := s.nextStatus(); st.State != "WAITING" || st.Session != nil {
			t.Errorf("first event: %+v, want WAITING", st)
		}
		mini := e.mustLogin(1, e.fake.IssueCode(alice))
		e.mustMove(1, mini.Token, "scanWebLogin", start.ID)
		if st := s.nextStatus(); st.State != "SCANNED" || st.Session != nil {
			t.Errorf("after the scan on the other instance: %+v, want SCANNED", st)
		}
		e.mustMove(1, mini.Token, "confirmWebLogin", start.ID)
		st := s.nextStatus()
		if st.State != "CONFIRMED" || st.Session == nil || st.Session.User.ID != mini.User.ID {
			t.Fatalf("after the confirmation on the other instance: %+v, want CONFIRMED with alice's session", st)
		}
		if event, data := s.next(); event != "complete" {
			t.Errorf("after the session: %q %s, want complete", event, data)
		}
		if u, c := e.me(1, st.Session.Token); c != "" || u.ID != mini.User.ID {
			t.Errorf("me with the streamed token on the other instance = %+v %s", u, c)
		}
		if again := e.mustPoll(1, start.ID, start.Secret); again.State != "CONFIRMED" || again.Session != nil {
			t.Errorf("a poll after the stream took the session: %+v, want CONFIRMED without one", again)
		}
	})
}

// TestWebLoginSubscriptionNeedsEventStream: a subscription posted as a plain request is
// refused with a message that says how to send it.
func TestWebLoginSubscriptionNeedsEventStream(t *testing.T) {
	testdb.Run(t, func(t *testing.T, b testdb.Backend) {
		e := newEnv(t, b, withWebLogin(auth.Policy{}))
		start := e.startWebLogin(0)
		r := e.browser(0, browserIP, watchDoc, map[string]any{"id": start.ID, "secret": start.Secret})
		if r.Status != http.StatusBadRequest || len(r.Errors) == 0 || !strings.Contains(r.Errors[0].Message, "text/event-stream") {
			t.Errorf("plain POST of a subscription: %d %v, want 400 naming text/event-stream", r.Status, r.Errors)
		}
	})
}

// TestWebLoginRateLimit: an address that starts too many web logins is told to wait,
// and so is everyone while WeChat refuses to draw codes; a refused start leaves nothing.
func TestWebLoginRateLimit(t *testing.T) {
	testdb.Run(t, func(t *testing.T, b testdb.Backend) {
		e := newEnv(t, b, withWebLogin(auth.Policy{WebLoginsPerMinute: 10, WebLoginBurst: 3}))
		e.clock.Freeze()
		for i := range 3 {
			if r := e.browser(0, browserIP, webLoginDoc, nil); r.Code() != "" {
				t.Fatalf("start %d within the burst: %s", i+1, r.Code())
			}
		}
		for i := range 2 {
			if r := e.browser(0, browserIP, webLoginDoc, nil); r.Code() != "RATE_LIMITED" {
				t.Errorf("start %d past the burst: %q, want RATE_LIMITED", 4+i, r.Code())
			}
		}
		if n := e.webLoginRows(); n != 3 {
			t.Errorf("%d web_logins rows, want the 3 started: a refused start writes nothing", n)
		}
		if n := e.fake.CallsTo("getwxacodeunlimit"); n != 3 {
			t.Errorf("%d codes asked of WeChat, want 3: a refused start never reaches it", n)
		}
		if r := e.browser(0, "198.51.100.9", webLoginDoc, nil); r.Code() != "" {
			t.Errorf("another address: %q, want its own limit", r.Code())
		}

		e.fake.InjectFaultFor("getwxacodeunlimit", fakewechat.FaultRateLimit, -1) // 45009
		if r := e.browser(0, "198.51.100.10", webLoginDoc, nil); r.Code() != "RATE_LIMITED" || string(r.Data["startWebLogin"]) != "" && string(r.Data["startWebLogin"]) != "null" {
			t.Errorf("WeChat answering 45009: %q %s, want RATE_LIMITED and no attempt", r.Code(), r.Data["startWebLogin"])
		}
		if n := e.webLoginRows(); n != 4 {
			t.Errorf("%d web_logins rows after WeChat's refusal, want 4: it leaves none", n)
		}
		e.fake.InjectFaultFor("getwxacodeunlimit", fakewechat.FaultNone, 0)
		if r := e.browser(0, "198.51.100.10", webLoginDoc, nil); r.Code() != "" {
			t.Errorf("once WeChat draws codes again: %q", r.Code())
		}
		started := e.db.AuditEvent.Query().Where(auditevent.EventEQ(auditevent.EventWebLoginStarted)).CountX(context.Background())
		if started != 5 {
			t.Errorf("%d web_login_started audit rows, want the 5 that started", started)
		}
	})
}

// TestWebLoginHousekeeping: an ended attempt stays a minute, for the page's last look
// to say it expired, and then housekeeping deletes it; a live one stays.
func TestWebLoginHousekeeping(t *testing.T) {
	testdb.Run(t, func(t *testing.T, b testdb.Backend) {
		e := newEnv(t, b, withWebLogin(auth.Policy{}))
		ctx := context.Background()
		old := e.startWebLogin(0)
		e.clock.Advance(auth.DefaultWebLoginTTL + 50*time.Second)
		if p, err := e.services[0].Purge(ctx); err != nil || p.WebLogins != 0 {
			t.Errorf("purge within the minute after the end: %+v %v, want nothing deleted", p, err)
		}
		if st := e.mustPoll(0, old.ID, old.Secret); st.State != "EXPIRED" {
			t.Errorf("within the minute after the end: %s, want EXPIRED", st.State)
		}
		live := e.startWebLogin(0)
		e.clock.Advance(20 * time.Second)
		if p, err := e.services[0].Purge(ctx); err != nil || p.WebLogins != 1 {
			t.Errorf("purge a minute after the end: %+v %v, want the one attempt deleted", p, err)
		}
		if e.db.WebLogin.Query().Where(weblogin.ID(mustUUID(t, old.ID))).ExistX(ctx) {
			t.Error("the ended attempt's row is still there")
		}
		if n := e.webLoginRows(); n != 1 {
			t.Errorf("%d web_logins rows, want the live one", n)
		}
		if st := e.mustPoll(0, live.ID, live.Secret); st.State != "WAITING" {
			t.Errorf("the live attempt after housekeeping: %s, want WAITING", st.State)
		}
		if _, r := e.pollWebLogin(0, old.ID, old.Secret); r.Code() != "BAD_USER_INPUT" {
			t.Errorf("a poll of the purged attempt: %q, want BAD_USER_INPUT", r.Code())
		}
	})
}
