// Package verify lets other services trust wxlogin's sessions without knowing anything
// of its database: forward auth for gateways (/auth/verify: nginx auth_request, APISIX
// forward-auth, Traefik ForwardAuth, Envoy ext_authz) and RFC 7662 token introspection
// (/oauth/introspect) for services that check a token themselves.
//
// Both look a token up as `me` does (auth.Service.Authenticate: the instance's few-second
// session cache, then one indexed query), so they honour a logout, a revocation or a
// deletion as `me` does: at once on the instance that made it, within 5 s elsewhere.
package verify

import (
	"context"
	"errors"
	"log/slog"
	"net/http"

	"github.com/wxlogin/wxlogin/internal/auth"
	"github.com/wxlogin/wxlogin/internal/database"
	"github.com/wxlogin/wxlogin/internal/metrics"
)

// The headers a valid session's forward-auth answer carries, for the gateway to pass
// on to the service behind it. A gateway must set them itself on the request it
// forwards (or strip them): a client that sends them must never get them through.
const (
	HeaderUserID    = "X-Wxlogin-User-Id"
	HeaderOpenID    = "X-Wxlogin-Openid"
	HeaderAppID     = "X-Wxlogin-Appid"
	HeaderSessionID = "X-Wxlogin-Session-Id"
	HeaderUnionID   = "X-Wxlogin-Unionid"
)

// Outcomes of a check, as the metrics count them.
const (
	outcomeValid       = "valid"
	outcomeInvalid     = "invalid"
	outcomeUnavailable = "unavailable"
	outcomeError       = "error"
)

// Forward answers forward-auth requests, of any method: 200 with the session's headers
// for a valid bearer token; 401 for none, a malformed, unknown, expired or revoked one;
// 503 while the database cannot be reached. It must sit behind the auth middleware
// (auth.Service.Middleware), which reads the Authorization header.
func Forward(m *metrics.Metrics, log *slog.Logger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		cur, err := auth.CurrentFrom(r.Context())
		outcome := classify(r.Context(), log, "forward auth", err)
		m.Verification("forward_auth", outcome)
		switch outcome {
		case outcomeValid:
			h := w.Header()
			h.Set(HeaderUserID, cur.Account.User.ID.String())
			h.Set(HeaderOpenID, cur.Account.Identity.Openid)
			h.Set(HeaderAppID, cur.Account.Identity.Appid)
			h.Set(HeaderSessionID, cur.Session.ID.String())
			if u := cur.Account.User.Unionid; u != nil {
				h.Set(HeaderUnionID, *u)
			}
			w.WriteHeader(http.StatusOK)
		case outcomeInvalid:
			w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
			w.WriteHeader(http.StatusUnauthorized)
		default:
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	})
}

// classify sorts the result of a session lookup into an outcome, logging what is
// neither a valid nor an invalid token. A token problem is never the server's.
func classify(ctx context.Context, log *slog.Logger, what string, err error) string {
	switch {
	case err == nil:
		return outcomeValid
	case errors.Is(err, auth.ErrUnauthenticated):
		return outcomeInvalid
	case database.IsUnavailable(err), errors.Is(err, context.DeadlineExceeded):
		log.WarnContext(ctx, "verify: the database is unavailable", "check", what, "error", err)
		return outcomeUnavailable
	case errors.Is(err, context.Canceled):
		return outcomeUnavailable // the gateway went away; nobody reads the answer
	}
	log.ErrorContext(ctx, "verify: looking a session up failed", "check", what, "error", err)
	return outcomeError
}
