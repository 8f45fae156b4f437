package auth

import (
	"context"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/google/uuid"
)

type ctxKey struct{}

// requestAuth is a request's credential, resolved into a session at most once and only
// when a resolver asks: a login request carrying a stale token costs no lookup.
type requestAuth struct {
	svc    *Service
	header []string
	client Client

	fresh atomic.Bool // read the session from the database, not the cache
	once  sync.Once
	cur   *Current
	err   error
	// ended: a field of the request ended the request's own session (a logout), so
	// the fields after it have none.
	ended atomic.Bool
}

// Middleware puts the request's credential and client details in its context. It never
// rejects a request: fields that need a session ask for it with CurrentFrom.
func (s *Service) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ra := &requestAuth{
			svc:    s,
			header: r.Header.Values("Authorization"),
			client: NewClient(s.clientIP(r), r.UserAgent()),
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), ctxKey{}, ra)))
	})
}

// CurrentFrom returns the session the request authenticated with, or an error that
// satisfies errors.Is(err, ErrUnauthenticated) when it has none.
func CurrentFrom(ctx context.Context) (*Current, error) {
	ra, ok := ctx.Value(ctxKey{}).(*requestAuth)
	if !ok {
		return nil, errNoToken
	}
	ra.once.Do(func() {
		token, err := bearer(ra.header)
		if err != nil {
			ra.err = err
			return
		}
		ra.cur, ra.err = ra.svc.authenticate(ctx, token, ra.fresh.Load())
	})
	if ra.ended.Load() {
		return nil, errSessionEnded
	}
	return ra.cur, ra.err
}

// endInRequest records that the request ended session id: when it is the request's own,
// every field after this one answers as without a session.
func endInRequest(ctx context.Context, id uuid.UUID) {
	// cur is set: the caller got its session from CurrentFrom.
	if ra, ok := ctx.Value(ctxKey{}).(*requestAuth); ok && ra.cur != nil && ra.cur.Session.ID == id {
		ra.ended.Store(true)
	}
}

// ReadFresh makes the request's session be read from the database rather than this
// instance's cache: call it before CurrentFrom in a request that changes something, so
// that it acts on the session and user as they are now (another instance may have
// merged the user a moment ago).
func ReadFresh(ctx context.Context) {
	if ra, ok := ctx.Value(ctxKey{}).(*requestAuth); ok {
		ra.fresh.Store(true)
	}
}

// ClientFrom returns where the request came from.
func ClientFrom(ctx context.Context) Client {
	if ra, ok := ctx.Value(ctxKey{}).(*requestAuth); ok {
		return ra.client
	}
	return Client{}
}

// bearer extracts the token from Authorization header values (RFC 6750: the scheme is
// case-insensitive; exactly one header).
func bearer(values []string) (string, error) {
	switch {
	case len(values) == 0 || (len(values) == 1 && strings.TrimSpace(values[0]) == ""):
		return "", errNoToken
	case len(values) > 1:
		return "", errMalformedToken
	}
	scheme, token, ok := strings.Cut(strings.TrimSpace(values[0]), " ")
	token = strings.TrimSpace(token)
	if !ok || !strings.EqualFold(scheme, "Bearer") || token == "" {
		return "", errMalformedToken
	}
	return token, nil
}

// clientIP is the address a request comes from: the peer's, or, when the peer is a
// trusted proxy, the last address in X-Forwarded-For that is not itself a trusted
// proxy. Addresses an untrusted peer puts in the header are never believed.
func (s *Service) clientIP(r *http.Request) string {
	peer, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	ip := peer.Addr().Unmap()
	if !s.isTrusted(ip) {
		return ip.String()
	}
	hops := strings.Split(strings.Join(r.Header.Values("X-Forwarded-For"), ","), ",")
	for i := len(hops) - 1; i >= 0; i-- {
		hop := strings.TrimSpace(hops[i])
		if hop == "" {
			continue
		}
		addr, ok := parseHop(hop)
		if !ok {
			break // junk: the last good hop is as far as the chain can be trusted
		}
		ip = addr
		if !s.isTrusted(ip) {
			break
		}
	}
	return ip.String()
}

// parseHop reads one X-Forwarded-For entry: an address, possibly with a port, and an
// IPv6 one possibly in brackets, as some load balancers write them.
func parseHop(hop string) (netip.Addr, bool) {
	if ap, err := netip.ParseAddrPort(hop); err == nil {
		return ap.Addr().Unmap(), true
	}
	addr, err := netip.ParseAddr(strings.TrimSuffix(strings.TrimPrefix(hop, "["), "]"))
	return addr.Unmap(), err == nil
}

func (s *Service) isTrusted(ip netip.Addr) bool {
	for _, p := range s.trusted {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}
