// Package wechat is the client for WeChat's server API: it exchanges a
// mini-program's wx.login code for a session (code2Session), gets access
// tokens (stable_token), exchanges phone codes for phone numbers
// (getuserphonenumber), and checks and resets session_keys, each with
// bounded time, bounded retries and typed errors. It knows nothing of users
// or sessions of its own, and never lets the app secret, an access token, a
// code, a session_key, a signature or a phone number reach a log line or an
// error string.
package wechat

import (
	"bytes"
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
	"slices"
	"strconv"
	"strings"
	"time"

	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"

	"github.com/wxlogin/wxlogin/internal/tracing"
)

const (
	apiCode2Session = "jscode2session"
	maxBody         = 64 << 10
	maxImage        = 2 << 20 // an image answer's bound (getwxacodeunlimit's)
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
	Deadline       time.Duration // budget for one call (Code2Session, StableToken…) including retries; default 8s (a login must answer in <10s)
	MaxAttempts    int           // default 3
	RetryBackoff   time.Duration // base of the full-jitter, doubling backoff (ceiling capped at 2s); default 100ms
	// Now is the clock that access-token expiry times are read on; default time.Now.
	// Tests that move their services' clocks pass the same one here.
	Now func() time.Time
	// Observe, when set, is told of every HTTP attempt: the API, its result (the
	// errcode, 0 for success; http_<status>; bad_response; timeout; canceled;
	// transport_error) and how long it took.
	Observe func(api, result string, d time.Duration)
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
	now            func() time.Time
	observe        func(api, result string, d time.Duration)
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
		now:            cfg.Now,
		observe:        cfg.Observe,
	}
	if c.now == nil {
		c.now = time.Now
	}
	if c.observe == nil {
		c.observe = func(string, string, time.Duration) {}
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
	// A burst of logins holds one connection each for WeChat's round trip; keeping
	// them afterwards spares the next burst its TLS handshakes.
	t.MaxIdleConns = 256
	t.MaxIdleConnsPerHost = 256
	var rt http.RoundTripper = t
	if tracing.On() {
		// A span per attempt, named by the API; the exporter drops the URL's query,
		// which holds the app secret, a login code or the access token.
		rt = otelhttp.NewTransport(t, otelhttp.WithSpanNameFormatter(func(_ string, r *http.Request) string { return "wechat " + r.URL.Path }))
	}
	return &http.Client{
		Transport: rt,
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
	k := &call{
		api:    apiCode2Session,
		method: http.MethodGet,
		path:   "/sns/jscode2session",
		query: url.Values{
			"appid":      {c.appID},
			"secret":     {c.secret},
			"js_code":    {code},
			"grant_type": {"authorization_code"},
		},
		shown:   []string{"appid", "grant_type"},
		secrets: []string{code},
		// "Code been used" right after an attempt that may have reached WeChat:
		// most likely that attempt spent it. The code is gone, but the fault was
		// WeChat's slowness, not the client's code.
		spent:    40163,
		spentMsg: "the retry found the code already used, most likely by that attempt",
	}
	return do(ctx, c, k, decodeSession)
}

// decodeSession reads code2Session's success answer.
func decodeSession(body []byte) (Session, []slog.Attr, error) {
	var b struct {
		OpenID     string `json:"openid"`
		UnionID    string `json:"unionid"`
		SessionKey string `json:"session_key"`
	}
	if err := json.Unmarshal(body, &b); err != nil {
		return Session{}, nil, errNotJSON
	}
	if b.OpenID == "" || b.SessionKey == "" {
		return Session{}, nil, errors.New("success answer without openid or session_key")
	}
	sess := Session{OpenID: b.OpenID, UnionID: b.UnionID, SessionKey: b.SessionKey}
	return sess, []slog.Attr{slog.Any("session", sess)}, nil
}

var errNotJSON = errors.New("response is not WeChat's JSON")

// call is one API request as the retry loop and the attempt log see it.
type call struct {
	api    string     // e.g. "jscode2session": names the call in logs and errors
	method string     // http.MethodGet or http.MethodPost
	path   string     // e.g. "/sns/jscode2session"
	query  url.Values // sent as is
	shown  []string   // query keys whose values the log shows; every other one is REDACTED
	body   []byte     // a POST's JSON; never logged, it may hold the secret or a code
	// secrets are the values, besides the app secret, scrubbed from any text
	// that came from elsewhere (errmsg, transport errors): codes, tokens,
	// session_keys, signatures.
	secrets []string
	// once: the request must not reach WeChat twice (each success is billed,
	// the code is single use). Only "system busy" and failures before anything
	// was sent (dial errors) are then retried; an attempt timeout or a broken
	// answer is not.
	once bool
	// spent: a retry answering this errcode after an attempt that may have
	// reached WeChat most likely means that attempt did the work (used the
	// code, replaced the key). The caller then gets ErrUnavailable saying so
	// (spentMsg), not the errcode's sentinel. 0: none.
	spent    int
	spentMsg string
	// kinds are the errcodes this API means otherwise than kindOf says.
	kinds map[int]error
	// image: a success answer is an image of up to maxImage bytes, not JSON;
	// decode gets its bytes and checks that they are one. Errors are JSON.
	image bool
}

// bodyLimit is how large an answer to k may be.
func (k *call) bodyLimit() int {
	if k.image {
		return maxImage
	}
	return maxBody
}

// do makes the call with bounded attempts, all within the configured
// Deadline, and logs one line per attempt. decode turns a success answer
// (errcode 0 or absent) into the result and the attributes its log line
// shows (never a secret); a decode error means the answer is not what WeChat
// sends, and its text must not hold anything from the answer.
func do[T any](ctx context.Context, c *Client, k *call, decode func(body []byte) (T, []slog.Attr, error)) (T, error) {
	var zero T
	dctx, cancel := context.WithTimeout(ctx, c.deadline)
	defer cancel()
	deadline, _ := dctx.Deadline()

	var earlier *unavailableError // the last failed attempt that may have reached WeChat
	for attempt := 1; ; attempt++ {
		v, retry, err := attemptOnce(ctx, dctx, c, k, attempt, decode)
		if err == nil {
			return v, nil
		}
		var apiErr *APIError
		if earlier != nil && k.spent != 0 && errors.As(err, &apiErr) && apiErr.Errcode == k.spent {
			return zero, &unavailableError{api: k.api, msg: earlier.msg + "; " + k.spentMsg}
		}
		if u := (*unavailableError)(nil); errors.As(err, &u) && u.maybeSent {
			earlier = u
		}
		if !retry || attempt >= c.maxAttempts {
			return zero, err
		}
		wait := c.backoffFor(attempt)
		if time.Until(deadline) <= wait {
			return zero, err // no time left for another attempt
		}
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-dctx.Done():
			t.Stop()
			return zero, c.doneErr(ctx, k.api)
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
	return &unavailableError{api: api, msg: fmt.Sprintf("no answer within the %s deadline", c.deadline), extra: context.DeadlineExceeded}
}

// envelope is what every WeChat answer may carry. Some APIs put the error in errno
// instead of errcode (getuserphonenumber's 1400001, out of quota).
type envelope struct {
	Errcode int    `json:"errcode"`
	Errno   int    `json:"errno"`
	Errmsg  string `json:"errmsg"`
}

// attemptOnce makes one attempt and logs it. retry says whether a further
// attempt may succeed and is allowed.
func attemptOnce[T any](ctx, dctx context.Context, c *Client, k *call, attempt int, decode func([]byte) (T, []slog.Attr, error)) (v T, retry bool, err error) {
	var zero T
	full, logURL := c.base+k.path, c.base+k.path
	if len(k.query) > 0 {
		logQuery := make(url.Values, len(k.query))
		for key, vals := range k.query {
			if slices.Contains(k.shown, key) {
				logQuery[key] = vals
			} else {
				logQuery.Set(key, redacted)
			}
		}
		full += "?" + k.query.Encode()
		logURL += "?" + logQuery.Encode()
	}

	start := time.Now()
	status, errcode, rid := 0, 0, ""
	var okAttrs []slog.Attr
	actx, cancel := context.WithTimeout(dctx, c.attemptTimeout)
	defer cancel() // after the deferred log line below, which reads actx
	defer func() {
		c.observe(k.api, attemptResult(ctx, actx, err, status, errcode), time.Since(start))
		attrs := []slog.Attr{
			slog.String("api", k.api),
			slog.Int("attempt", attempt),
			slog.String("method", k.method),
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
			attrs = append(attrs, okAttrs...)
			c.log.LogAttrs(ctx, slog.LevelDebug, "wechat api call", attrs...)
			return
		}
		attrs = append(attrs, slog.String("error", err.Error()), slog.Bool("retryable", retry))
		c.log.LogAttrs(ctx, slog.LevelWarn, "wechat api call failed", attrs...)
	}()

	var reqBody io.Reader
	if k.body != nil {
		reqBody = bytes.NewReader(k.body)
	}
	req, err := http.NewRequestWithContext(actx, k.method, full, reqBody)
	if err != nil {
		return zero, false, &unavailableError{api: k.api, msg: "cannot build request"}
	}
	req.Header.Set("Accept", "application/json")
	if k.body != nil {
		req.Header.Set("Content-Type", "application/json")
	}

	resp, err := c.http.Do(req)
	if err != nil {
		retry, err := c.transportErr(ctx, dctx, actx, err, k)
		return zero, retry, err
	}
	defer resp.Body.Close()
	status = resp.StatusCode
	body, err := io.ReadAll(io.LimitReader(resp.Body, int64(k.bodyLimit())+1))
	if err != nil {
		retry, err := c.transportErr(ctx, dctx, actx, err, k)
		return zero, retry, err
	}
	if resp.StatusCode != http.StatusOK {
		return zero, false, &unavailableError{api: k.api, msg: fmt.Sprintf("HTTP status %d", resp.StatusCode), maybeSent: true}
	}
	v, okAttrs, err = answer(c, k, body, decode)
	if apiErr := (*APIError)(nil); errors.As(err, &apiErr) {
		errcode, rid = apiErr.Errcode, apiErr.RID
		return zero, apiErr.Errcode == -1, err
	}
	if err != nil {
		return zero, false, err
	}
	return v, false, nil
}

// answer reads the body of a 200 answer: an *APIError when its errcode is not 0, else
// what decode makes of it. Only an APIError holds text from the body: its errmsg,
// scrubbed of the call's secrets.
func answer[T any](c *Client, k *call, body []byte, decode func([]byte) (T, []slog.Attr, error)) (T, []slog.Attr, error) {
	var zero T
	if len(body) > k.bodyLimit() {
		return zero, nil, &unavailableError{api: k.api, msg: fmt.Sprintf("response larger than %d KiB", k.bodyLimit()>>10), maybeSent: true}
	}
	var env envelope
	if err := json.Unmarshal(body, &env); err != nil && !k.image {
		return zero, nil, &unavailableError{api: k.api, msg: errNotJSON.Error(), maybeSent: true}
	}
	if env.Errcode == 0 {
		env.Errcode = env.Errno
	}
	if env.Errcode != 0 {
		msg := c.scrub(env.Errmsg, k.secrets)
		kind, ok := k.kinds[env.Errcode]
		if !ok {
			kind = kindOf(env.Errcode)
		}
		return zero, nil, &APIError{API: k.api, Errcode: env.Errcode, Errmsg: msg, RID: parseRID(msg), kind: kind}
	}
	v, attrs, err := decode(body)
	if err != nil {
		return zero, nil, &unavailableError{api: k.api, msg: err.Error(), maybeSent: true}
	}
	return v, attrs, nil
}

// attemptResult names how an attempt ended, for the metrics.
func attemptResult(ctx, actx context.Context, err error, status, errcode int) string {
	switch {
	case err == nil:
		return "0"
	case errcode != 0:
		return strconv.Itoa(errcode)
	case status == http.StatusOK:
		return "bad_response"
	case status != 0:
		return "http_" + strconv.Itoa(status)
	case errors.Is(ctx.Err(), context.Canceled):
		return "canceled"
	case actx.Err() != nil:
		return "timeout"
	}
	return "transport_error"
}

// transportErr turns a failed round trip into a redacted error, and says
// whether another attempt may help and is allowed (not when the call's time
// is up, nor for a once call that may have reached WeChat). Go's *url.Error
// carries the whole request URL (secret, code and token included), so only
// the text of the error beneath it is kept, scrubbed again for safety.
func (c *Client) transportErr(ctx, dctx, actx context.Context, err error, k *call) (retry bool, _ error) {
	if ctx.Err() != nil || dctx.Err() != nil {
		return false, c.doneErr(ctx, k.api)
	}
	if actx.Err() != nil {
		return !k.once, &unavailableError{api: k.api, msg: fmt.Sprintf("no answer within the %s attempt timeout", c.attemptTimeout), maybeSent: true, extra: context.DeadlineExceeded}
	}
	var opErr *net.OpError
	notSent := errors.As(err, &opErr) && opErr.Op == "dial"
	var uerr *url.Error
	if errors.As(err, &uerr) {
		err = uerr.Err
	}
	return notSent || !k.once, &unavailableError{api: k.api, msg: "request failed: " + c.scrub(err.Error(), k.secrets), maybeSent: !notSent}
}

// scrub removes the app secret and the given values from text that came
// from elsewhere.
func (c *Client) scrub(s string, secrets []string) string {
	for _, secret := range append([]string{c.secret}, secrets...) {
		for _, v := range []string{secret, url.QueryEscape(secret)} {
			if v != "" {
				s = strings.ReplaceAll(s, v, redacted)
			}
		}
	}
	return s
}
