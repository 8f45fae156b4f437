// Micro-benchmarks of the auth hot paths: issuing, hashing and checking session tokens,
// reading the Authorization header, and Authenticate, which every authenticated request
// pays, on each database testdb offers (SQLite always, MariaDB/MySQL when reachable).
//
// Run them with:
//
//	go test -run '^$' -bench . ./internal/auth
//	go test -run '^$' -bench Authenticate -benchtime=2000x ./internal/auth
package auth

import (
	"context"
	"testing"
	"time"

	"github.com/wxlogin/wxlogin/internal/testdb"
	"github.com/wxlogin/wxlogin/internal/wechat/fakewechat"
)

func BenchmarkNewToken(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		newToken()
	}
}

func BenchmarkHashToken(b *testing.B) {
	token, _ := newToken()
	b.ReportAllocs()
	for b.Loop() {
		hashToken(token)
	}
}

func BenchmarkWellFormed(b *testing.B) {
	token, _ := newToken()
	for _, c := range []struct{ name, token string }{
		{"valid", token},
		{"wrong_length", token[:tokenLen-1]},        // rejected before decoding
		{"bad_character", token[:tokenLen-1] + "!"}, // decoded, then rejected
		{"empty", ""},
	} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				wellFormed(c.token)
			}
		})
	}
}

func BenchmarkBearer(b *testing.B) {
	token, _ := newToken()
	for _, c := range []struct {
		name   string
		values []string
	}{
		{"valid", []string{"Bearer " + token}},
		{"lowercase_scheme", []string{"bearer " + token}},
		{"padded", []string{"  Bearer   " + token + "  "}},
		{"missing", nil},
		{"wrong_scheme", []string{"Basic " + token}},
		{"two_headers", []string{"Bearer " + token, "Bearer " + token}},
	} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				bearer(c.values)
			}
		})
	}
}

// BenchmarkAuthenticate looks up a live session by its token: the read every
// authenticated request makes. The session is fresh, so lastSeenAt is not written
// (that happens at most once a minute per session); this is the read path alone, with
// the session cache (a hit) and without it (the one indexed query).
func BenchmarkAuthenticate(b *testing.B) {
	for _, backend := range testdb.Backends(b) {
		for _, cache := range []struct {
			name string
			ttl  time.Duration
		}{{"cached", 0}, {"uncached", -1}} {
			b.Run(backend.Name+"/"+cache.name, func(b *testing.B) {
				benchAuthenticate(b, backend, cache.ttl)
			})
		}
	}
}

func benchAuthenticate(b *testing.B, backend testdb.Backend, cacheTTL time.Duration) {
	svc, token := benchLogin(b, backend, cacheTTL)
	ctx := context.Background()
	b.Run("serial", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := svc.Authenticate(ctx, token); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := svc.Authenticate(ctx, token); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
}

// benchLogin builds a Service on a fresh database of the backend's kind and logs one
// user in through the fake WeChat over real HTTP, as a mini-program would: one user, one
// identity, one session. It returns the service and the session's token.
func benchLogin(b *testing.B, backend testdb.Backend, cacheTTL time.Duration) (*Service, string) {
	b.Helper()
	svc, fake := testService(b, backend, Options{SessionCacheTTL: cacheTTL})
	appID := fake.AppID()
	code := fake.IssueCode(fakewechat.User{OpenID: fakewechat.OpenIDFor(appID, "bench"), UnionID: fakewechat.UnionIDFor("bench")})
	login, err := svc.Login(context.Background(), "", code, Client{IP: "192.0.2.1", UserAgent: "wxlogin-bench"})
	if err != nil {
		b.Fatal(err)
	}
	return svc, login.Token
}
