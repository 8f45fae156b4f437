package verify

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"log/slog"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/wxlogin/wxlogin/internal/auth"
	"github.com/wxlogin/wxlogin/internal/metrics"
	"github.com/wxlogin/wxlogin/internal/ratelimit"
)

// Client is a service allowed to introspect tokens, by HTTP Basic authentication.
type Client struct {
	ID     string
	Secret string
}

// IntrospectionOptions configure /oauth/introspect.
type IntrospectionOptions struct {
	Auth    *auth.Service
	Clients []Client
	// PerMinute and Burst bound each client's introspections; PerMinute <= 0 is no limit.
	PerMinute, Burst int
	Metrics          *metrics.Metrics
	Logger           *slog.Logger
	Now              func() time.Time
}

// Failed client authentications are limited per address, whatever the client id, so
// that a secret cannot be guessed at the rate the network allows.
const (
	failuresPerMinute = 10
	failureBurst      = 10
)

// maxTokenParam bounds the token a request may send: wxlogin's are 43 bytes.
const maxTokenParam = 512

// Introspection answers RFC 7662 token introspection: POST, a form-encoded token,
// client authentication by HTTP Basic.
func Introspection(o IntrospectionOptions) http.Handler {
	now := o.Now
	if now == nil {
		now = time.Now
	}
	clients := make(map[string][32]byte, len(o.Clients))
	for _, c := range o.Clients {
		clients[c.ID] = sha256.Sum256([]byte(c.Secret))
	}
	perClient := ratelimit.New(o.PerMinute, time.Minute, o.Burst)
	failures := ratelimit.New(failuresPerMinute, time.Minute, failureBurst)
	count := func(outcome string) { o.Metrics.Verification("introspection", outcome) }

	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		if r.Method != http.MethodPost {
			w.Header().Set("Allow", http.MethodPost)
			count("bad_request")
			oauthError(w, http.StatusMethodNotAllowed, "invalid_request", "POST the token, form-encoded: token=…")
			return
		}
		ip := auth.ClientFrom(r.Context()).IP
		if err := failures.Peek(ip, now()); err != nil {
			count("rate_limited")
			tooMany(w, err)
			return
		}
		id, ok := authenticate(r, clients)
		if !ok {
			failures.Take(ip, now())
			count("unauthorized_client")
			w.Header().Set("WWW-Authenticate", `Basic realm="wxlogin introspection"`)
			oauthError(w, http.StatusUnauthorized, "invalid_client", "Authenticate with HTTP Basic as a client in WXLOGIN_INTROSPECTION_CLIENTS.")
			return
		}
		if err := perClient.Take(id, now()); err != nil {
			count("rate_limited")
			tooMany(w, err)
			return
		}
		token, msg := tokenParam(r)
		if msg != "" {
			count("bad_request")
			oauthError(w, http.StatusBadRequest, "invalid_request", msg)
			return
		}
		cur, err := o.Auth.Authenticate(r.Context(), token)
		outcome := classify(r.Context(), o.Logger, "introspection", err)
		count(outcome)
		switch outcome {
		case outcomeValid:
			writeJSON(w, http.StatusOK, active{
				Active:    true,
				Sub:       cur.Account.User.ID.String(),
				SID:       cur.Session.ID.String(),
				OpenID:    cur.Account.Identity.Openid,
				AppID:     cur.Account.Identity.Appid,
				UnionID:   cur.Account.User.Unionid,
				IssuedAt:  cur.Session.CreatedAt.Unix(),
				ExpiresAt: o.Auth.SessionEnds(cur.Session).Unix(),
				TokenType: "Bearer",
			})
		case outcomeInvalid:
			writeJSON(w, http.StatusOK, inactive{})
		default:
			oauthError(w, http.StatusServiceUnavailable, "temporarily_unavailable", "The session store cannot be reached: try again shortly.")
		}
	})
}

// active is RFC 7662's answer for a token in use.
type active struct {
	Active    bool    `json:"active"`
	Sub       string  `json:"sub"`
	SID       string  `json:"sid"`
	OpenID    string  `json:"openid"`
	AppID     string  `json:"appid"`
	UnionID   *string `json:"unionid,omitempty"`
	IssuedAt  int64   `json:"iat"`
	ExpiresAt int64   `json:"exp"`
	TokenType string  `json:"token_type"`
}

// inactive is the answer for any other token: nothing more is said of it.
type inactive struct {
	Active bool `json:"active"`
}

// authenticate checks the request's HTTP Basic credentials against the clients, in
// time that depends on neither the secret given nor whether the id exists. The id and
// secret are form-encoded inside the header (RFC 6749, 2.3.1).
func authenticate(r *http.Request, clients map[string][32]byte) (string, bool) {
	rawID, rawSecret, ok := r.BasicAuth()
	id, err1 := url.QueryUnescape(rawID)
	secret, err2 := url.QueryUnescape(rawSecret)
	given := sha256.Sum256([]byte(secret))
	want, known := clients[id]
	match := subtle.ConstantTimeCompare(given[:], want[:]) == 1
	return id, ok && err1 == nil && err2 == nil && known && match
}

// tokenParam reads the form's token, or says what is wrong with the request.
func tokenParam(r *http.Request) (token, problem string) {
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/x-www-form-urlencoded" {
		return "", "Send the token form-encoded: Content-Type: application/x-www-form-urlencoded, token=…"
	}
	if err := r.ParseForm(); err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return "", "The request body is too large."
		}
		return "", "The request body is not a valid form."
	}
	tokens := r.PostForm["token"]
	switch {
	case len(tokens) != 1 || tokens[0] == "":
		return "", "Send exactly one token parameter."
	case len(tokens[0]) > maxTokenParam:
		return "", "The token parameter is longer than any token."
	}
	return tokens[0], ""
}

func tooMany(w http.ResponseWriter, err *ratelimit.Error) {
	w.Header().Set("Retry-After", strconv.Itoa(err.RetryAfterSeconds()))
	oauthError(w, http.StatusTooManyRequests, "rate_limited", "Too many introspection requests: wait Retry-After seconds.")
}

// oauthError writes an error answer in the form of RFC 6749, 5.2.
func oauthError(w http.ResponseWriter, status int, code, description string) {
	writeJSON(w, status, struct {
		Error       string `json:"error"`
		Description string `json:"error_description"`
	}{code, description})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, _ := json.Marshal(v)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write(b)
}
