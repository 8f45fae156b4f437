// Package wechat is the client for WeChat's server API: it exchanges a
// mini-program's wx.login code for a session (code2Session) with bounded
// time, bounded retries and typed errors. It knows nothing of users or
// sessions of its own, and never lets the app secret, a code or a
// session_key reach a log line or an error string.
package wechat

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
)

const (
	apiCode2Session = "jscode2session"
	maxBody         = 64 << 10
	redacted        = "REDACTED"
	maxBackoff      = 2 * time.Second
)

// Config configures a Client. Zero values take the defaults noted.
type Config struct {
	BaseURL        string        // WECHAT_API_BASE, e.g. https://api.weixin.qq.com (trailing slash optional)
	AppID, Secret  string        // the mini-program's credentials; required
	HTTPClient     *http.Client  // optional; default: transport timeouts, no overall Timeout (each attempt has its own)
	Logger         *slog.Logger  // optional; default discards
	AttemptTimeout time.Duration // per HTTP attempt; default 3s
	Deadline       time.Duration // budget for one Code2Session including retries; default 8s (a login must answer in <10s)
	MaxAttempts    int           // default 3
	RetryBackoff   time.Duration // base of the full-jitter, doubling backoff (ceiling capped at 2s); default 100ms
}

// Client calls WeChat's server API. It is safe for concurrent use.
type Client struct {
	base           string
	appID, secret  string
	http           *http.Client
	log            *slog.Logger
	attemptTimeout time.Duration
	deadline       time.Duration
	maxAttempts    int
	backoff        time.Duration
}

// New validates cfg and returns a Client. BaseURL must be an absolute http or
// https URL; AppID and Secret must be set.
func New(cfg Config) (*Client, error) {
	u, err := url.Parse(cfg.BaseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		// The URL is not quoted back: it might carry credentials.
		return nil, errors.New("wechat: BaseURL must be an absolute http or https URL")
	}
	if u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return nil, errors.New("wechat: BaseURL must not carry credentials, a query or a fragment")
	}
	if cfg.AppID == "" {
		return nil, errors.New("wechat: AppID is required")
	}
	if cfg.Secret == "" {
		return nil, errors.New("wechat: Secret is required")
	}
	c := &Client{
		base:           strings.TrimRight(u.String(), "/"),
		appID:          cfg.AppID,
		secret:         cfg.Secret,
		http:           cfg.HTTPClient,
		log:            cfg.Logger,
		attemptTimeout: cfg.AttemptTimeout,
		deadline:       cfg.Deadline,
		maxAttempts:    cfg.MaxAttempts,
		backoff:        cfg.RetryBackoff,
	}
	if c.http == nil {
		c.http = defaultHTTPClient()
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	if c.attemptTimeout <= 0 {
		c.attemptTimeout = 3 * time.Second
	}
	if c.deadline <= 0 {
		c.deadline = 8 * time.Second
	}
	if c.maxAttempts <= 0 {
		c.maxAttempts = 3
	}
	if c.backoff <= 0 {
		c.backoff = 100 * time.Millisecond
	}
	return c, nil
}

func defaultHTTPClient() *http.Client {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.DialContext = (&net.Dialer{Timeout: 3 * time.Second, KeepAlive: 30 * time.Second}).DialContext
	t.TLSHandshakeTimeout = 3 * time.Second
	t.ResponseHeaderTimeout = 5 * time.Second
	t.MaxIdleConnsPerHost = 32
	return &http.Client{
		Transport: t,
		// WeChat does not redirect; a redirect is an answer we do not understand.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// AppID returns the mini-program's appid the client was configured with.
func (c *Client) AppID() string { return c.appID }

// Session is what code2Session answers. SessionKey is secret: it must never
// leave the server, and Session's String and LogValue leave it out.
type Session struct {
	OpenID, UnionID, SessionKey string // UnionID is "" when WeChat sends none
}

// LogValue shows the openid only.
func (s Session) LogValue() slog.Value {
	return slog.GroupValue(slog.String("openid", s.OpenID), slog.Bool("has_unionid", s.UnionID != ""))
}

// String shows the openid only, so that printing a Session never reveals the key.
func (s Session) String() string {
	return "wechat.Session{OpenID:" + s.OpenID + " SessionKey:" + redacted + "}"
}

// GoString is String, for %#v.
func (s Session) GoString() string { return s.String() }

// Code2Session exchanges a wx.login code for the user's openid, unionid and
// session_key. The whole call, retries included, ends within the configured
// Deadline. It retries only WeChat's "system busy" (-1) and transport
// failures. Errors satisfy errors.Is with one of the package's sentinels, or
// with context.Canceled when ctx was cancelled by the caller.
func (c *Client) Code2Session(ctx context.Context, code string) (Session, error) {
	if code == "" {
		return Session{}, fmt.Errorf("wechat %s: empty code, not sent: %w", apiCode2Session, ErrInvalidCode)
	}
	dctx, cancel := context.WithTimeout(ctx, c.deadline)
	defer cancel()
	deadline, _ := dctx.Deadline()

	var earlier *unavailableError // the last failed attempt that may have reached WeChat
	for attempt := 1; ; attempt++ {
		sess, retry, err := c.code2SessionOnce(ctx, dctx, attempt, code)
		if err == nil {
			return sess, nil
		}
		var apiErr *APIError
		if earlier != nil && errors.As(err, &apiErr) && apiErr.Errcode == 40163 {
			// "Code been used" right after an attempt that may have reached WeChat:
			// most likely that attempt spent it. The code is gone, but the fault was
			// WeChat's slowness, not the client's code.
			return Session{}, &unavailableError{api: apiCode2Session, msg: earlier.msg + "; the retry found the code already used, most likely by that attempt"}
		}
		if u := (*unavailableError)(nil); errors.As(err, &u) && u.maybeSent {
			earlier = u
		}
		if !retry || attempt >= c.maxAttempts {
			return Session{}, err
		}
		wait := c.backoffFor(attempt)
		if time.Until(deadline) <= wait {
			return Session{}, err // no time left for another attempt
		}
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-dctx.Done():
			t.Stop()
			return Session{}, c.doneErr(ctx, apiCode2Session)
		}
	}
}

// backoffFor is full jitter: uniform in [0, base·2^(attempt-1)], capped.
func (c *Client) backoffFor(attempt int) time.Duration {
	ceil := c.backoff
	for i := 1; i < attempt && ceil < maxBackoff; i++ {
		ceil *= 2
	}
	ceil = min(ceil, maxBackoff)
	return time.Duration(rand.Int64N(int64(ceil) + 1))
}

// doneErr is the error for a call ended by a context: the caller's (ctx)
// or our own overall deadline.
func (c *Client) doneErr(ctx context.Context, api string) error {
	switch err := ctx.Err(); {
	case errors.Is(err, context.Canceled):
		return fmt.Errorf("wechat %s: %w", api, err)
	case err != nil:
		return &unavailableError{api: api, msg: "caller's deadline exceeded", extra: err}
	}
	return &unavailableError{api: api, msg: fmt.Sprintf("no answer within the %s deadline", c.deadline)}
}

type code2SessionBody struct {
	OpenID     string `json:"openid"`
	UnionID    string `json:"unionid"`
	SessionKey string `json:"session_key"`
	Errcode    int    `json:"errcode"`
	Errmsg     string `json:"errmsg"`
}

// code2SessionOnce makes one attempt and logs it. retry says whether a
// further attempt may succeed.
func (c *Client) code2SessionOnce(ctx, dctx context.Context, attempt int, code string) (sess Session, retry bool, err error) {
	q := url.Values{
		"appid":      {c.appID},
		"secret":     {c.secret},
		"js_code":    {code},
		"grant_type": {"authorization_code"},
	}
	full := c.base + "/sns/jscode2session?" + q.Encode()
	q.Set("secret", redacted)
	q.Set("js_code", redacted)
	logURL := c.base + "/sns/jscode2session?" + q.Encode()

	start := time.Now()
	status, errcode, rid := 0, 0, ""
	defer func() {
		attrs := []slog.Attr{
			slog.String("api", apiCode2Session),
			slog.Int("attempt", attempt),
			slog.String("url", logURL),
			slog.Duration("duration", time.Since(start)),
		}
		if status != 0 {
			attrs = append(attrs, slog.Int("http_status", status))
		}
		if errcode != 0 {
			attrs = append(attrs, slog.Int("errcode", errcode))
		}
		if rid != "" {
			attrs = append(attrs, slog.String("rid", rid))
		}
		if err == nil {
			attrs = append(attrs, slog.Any("session", sess))
			c.log.LogAttrs(ctx, slog.LevelDebug, "wechat api call", attrs...)
			return
		}
		attrs = append(attrs, slog.String("error", err.Error()), slog.Bool("retryable", retry))
		c.log.LogAttrs(ctx, slog.LevelWarn, "wechat api call failed", attrs...)
	}()

	actx, cancel := context.WithTimeout(dctx, c.attemptTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(actx, http.MethodGet, full, nil)
	if err != nil {
		return Session{}, false, &unavailableError{api: apiCode2Session, msg: "cannot build request"}
	}
	req.Header.Set("Accept", "application/json")

	resp, err := c.http.Do(req)
	if err != nil {
		retry, err := c.transportErr(ctx, dctx, actx, err, code)
		return Session{}, retry, err
	}
	defer resp.Body.Close()
	status = resp.StatusCode
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBody+1))
	if err != nil {
		retry, err := c.transportErr(ctx, dctx, actx, err, code)
		return Session{}, retry, err
	}
	if resp.StatusCode != http.StatusOK {
		return Session{}, false, &unavailableError{api: apiCode2Session, msg: fmt.Sprintf("HTTP status %d", resp.StatusCode)}
	}
	if len(body) > maxBody {
		return Session{}, false, &unavailableError{api: apiCode2Session, msg: "response larger than 64 KiB"}
	}
	var b code2SessionBody
	if err := json.Unmarshal(body, &b); err != nil {
		return Session{}, false, &unavailableError{api: apiCode2Session, msg: "response is not WeChat's JSON"}
	}
	if b.Errcode != 0 {
		errcode = b.Errcode
		msg := c.scrub(b.Errmsg, code)
		rid = parseRID(msg)
		apiErr := &APIError{API: apiCode2Session, Errcode: b.Errcode, Errmsg: msg, RID: rid, kind: kindOf(b.Errcode)}
		return Session{}, b.Errcode == -1, apiErr
	}
	if b.OpenID == "" || b.SessionKey == "" {
		return Session{}, false, &unavailableError{api: apiCode2Session, msg: "success answer without openid or session_key"}
	}
	return Session{OpenID: b.OpenID, UnionID: b.UnionID, SessionKey: b.SessionKey}, false, nil
}

// transportErr turns a failed round trip into a redacted error, and says
// whether another attempt may help (not when the call's time is up). Go's
// *url.Error carries the whole request URL (secret and code included), so
// only the text of the error beneath it is kept, scrubbed again for safety.
func (c *Client) transportErr(ctx, dctx, actx context.Context, err error, code string) (retry bool, _ error) {
	if ctx.Err() != nil || dctx.Err() != nil {
		return false, c.doneErr(ctx, apiCode2Session)
	}
	if actx.Err() != nil {
		return true, &unavailableError{api: apiCode2Session, msg: fmt.Sprintf("no answer within the %s attempt timeout", c.attemptTimeout), maybeSent: true}
	}
	var opErr *net.OpError
	notSent := errors.As(err, &opErr) && opErr.Op == "dial"
	var uerr *url.Error
	if errors.As(err, &uerr) {
		err = uerr.Err
	}
	return true, &unavailableError{api: apiCode2Session, msg: "request failed: " + c.scrub(err.Error(), code), maybeSent: !notSent}
}

// scrub removes the secret and the code from text that came from elsewhere.
func (c *Client) scrub(s, code string) string {
	for _, v := range []string{c.secret, url.QueryEscape(c.secret), code, url.QueryEscape(code)} {
		if v != "" {
			s = strings.ReplaceAll(s, v, redacted)
		}
	}
	return s
}
