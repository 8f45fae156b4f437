// Fuzz targets for what auth reads from the outside: the Authorization header, the
// session token in it, the wx.login code, and X-Forwarded-For. Run one with:
//
//	go test -run '^$' -fuzz '^FuzzBearer$' -fuzztime 10m -parallel 1 ./internal/auth
//
// The seeds (f.Add and testdata/fuzz) run with the ordinary tests.
package auth

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/wxlogin/wxlogin/internal/input"
)

// sampleToken is a token of the shape newToken makes.
const sampleToken = "q3Vx0mP8cJ2sYh5tL9wZ1bN4kR7dF6gA0eU3iO8yT2s"

// FuzzBearer: reading the Authorization header never panics, and a token it accepts is
// non-empty, has no surrounding spaces, and reads back the same when sent again.
func FuzzBearer(f *testing.F) {
	for _, h := range []string{
		"Bearer " + sampleToken,
		"bearer " + sampleToken,
		"BEARER  " + sampleToken + "  ",
		"Bearer",
		"Bearer ",
		"Bearer \t ",
		"Basic dXNlcjpwYXNz",
		"Bearer a b",
		"Bearer\t" + sampleToken,
		"Bearer \x00",
		"Bearer \u00a0" + sampleToken + "\u2028",
		"",
		"   ",
		"Bearer" + sampleToken,
	} {
		f.Add(h, "", false)
	}
	f.Add("Bearer "+sampleToken, "Bearer "+sampleToken, true)
	f.Add("", "", true)

	f.Fuzz(func(t *testing.T, header, second string, two bool) {
		values := []string{header}
		if two {
			values = append(values, second)
		}
		token, err := bearer(values)
		if err != nil {
			if !errors.Is(err, ErrUnauthenticated) {
				t.Fatalf("bearer(%q): %v is not an ErrUnauthenticated", values, err)
			}
			if token != "" {
				t.Fatalf("bearer(%q) = %q with an error", values, token)
			}
			return
		}
		if two {
			t.Fatalf("bearer took two Authorization headers %q", values)
		}
		if token == "" || strings.TrimSpace(token) != token {
			t.Fatalf("bearer(%q) accepted the token %q", header, token)
		}
		scheme, _, _ := strings.Cut(strings.TrimSpace(header), " ")
		if !strings.EqualFold(scheme, "Bearer") {
			t.Fatalf("bearer(%q) accepted the scheme %q", header, scheme)
		}
		if again, err := bearer([]string{"Bearer " + token}); err != nil || again != token {
			t.Fatalf("bearer(%q) = %q, but sent again it reads %q, %v", header, token, again, err)
		}
	})
}

// FuzzWellFormed: wellFormed accepts only tokens of the length newToken makes that
// decode as base64url; hashToken is SHA-256 of the text; and any 32 bytes, encoded as
// newToken does, are a well-formed token that bearer reads back. Every run also checks
// a fresh newToken the same way.
func FuzzWellFormed(f *testing.F) {
	for _, tok := range []string{
		sampleToken,
		sampleToken[:tokenLen-1],
		sampleToken + "A",
		strings.Repeat("A", tokenLen),
		strings.Repeat("_", tokenLen),
		strings.Repeat("-", tokenLen),
		strings.Repeat("+", tokenLen), // the standard alphabet, not ours
		strings.Repeat("/", tokenLen),
		strings.Repeat("=", tokenLen),
		sampleToken[:tokenLen-1] + "=",
		sampleToken[:tokenLen-1] + "B", // non-zero trailing bits
		"",
		strings.Repeat("é", tokenLen/2),
	} {
		f.Add(tok, []byte(nil))
	}
	f.Add("", bytes.Repeat([]byte{0xff}, tokenBytes))
	f.Add("", bytes.Repeat([]byte{0}, tokenBytes))

	f.Fuzz(func(t *testing.T, token string, raw []byte) {
		if wellFormed(token) {
			b, err := base64.RawURLEncoding.DecodeString(token)
			if len(token) != tokenLen || err != nil || len(b) != tokenBytes {
				t.Fatalf("wellFormed(%q) but it is %d characters, decodes to %d bytes, %v", token, len(token), len(b), err)
			}
		}
		if sum := sha256.Sum256([]byte(token)); !bytes.Equal(hashToken(token), sum[:]) {
			t.Fatalf("hashToken(%q) is not its SHA-256", token)
		}

		if len(raw) >= tokenBytes {
			checkIssued(t, base64.RawURLEncoding.EncodeToString(raw[:tokenBytes]))
		}
		tok, hash := newToken()
		checkIssued(t, tok)
		if !bytes.Equal(hash, hashToken(tok)) {
			t.Fatalf("newToken's hash is not hashToken of its token")
		}
	})
}

// checkIssued checks that a token as the server issues it is well formed and that
// bearer reads it back from the header a client sends.
func checkIssued(t *testing.T, tok string) {
	t.Helper()
	if !wellFormed(tok) {
		t.Fatalf("the issued token %q is not wellFormed", tok)
	}
	for _, h := range []string{"Bearer " + tok, "bearer " + tok, " Bearer  " + tok + " "} {
		if got, err := bearer([]string{h}); err != nil || got != tok {
			t.Fatalf("bearer(%q) = %q, %v; want the issued token", h, got, err)
		}
	}
}

// FuzzValidateCode: ValidateCode never panics, accepts exactly the codes the contract
// allows (1 to 128 bytes of printable ASCII), answers the others with an input error
// (BAD_USER_INPUT), and never quotes the code back.
func FuzzValidateCode(f *testing.F) {
	for _, code := range []string{
		"0a1b2c3d4e5f6g7h8i9j0k1l2m3n4o5p", // the shape wx.login returns
		"081Kq2Ga1MZ7Ji0Pv1Ia1Mnp0X2Kq2GK",
		"",
		" ",
		"~",
		"code with spaces",
		strings.Repeat("a", MaxCodeLen),
		strings.Repeat("a", MaxCodeLen+1),
		"abc\x00",
		"abc\x7f",
		"abc\n",
		"café",
		"\xff\xfe",
	} {
		f.Add(code)
	}

	f.Fuzz(func(t *testing.T, code string) {
		err := ValidateCode(code)
		want := code != "" && len(code) <= MaxCodeLen && isPrintableASCII(code)
		if (err == nil) != want {
			t.Fatalf("ValidateCode(%q) = %v; the contract says accepted: %v", code, err, want)
		}
		if err == nil {
			return
		}
		if ie := (*input.Error)(nil); !errors.As(err, &ie) {
			t.Fatalf("ValidateCode(%q) = %T, not an input error", code, err)
		}
		if code != "" && strings.Contains(err.Error(), code) {
			t.Fatalf("ValidateCode(%q) quotes the code: %q", code, err)
		}
	})
}

func isPrintableASCII(s string) bool {
	for _, r := range []byte(s) {
		if r < ' ' || r > '~' {
			return false
		}
	}
	return true
}

// FuzzClientIP: the client address the middleware records, whatever the peer and
// X-Forwarded-For: never a panic; an untrusted peer is the client whatever the header
// says; behind trusted proxies the client is the peer or an address the header holds,
// and nothing a client writes to the left of what its proxies wrote changes it, nor
// does one more trusted proxy appending its hop.
func FuzzClientIP(f *testing.F) {
	for _, c := range []struct{ peer, xff string }{
		{"203.0.113.7:51234", "198.51.100.1"},
		{"10.0.0.2:443", "198.51.100.1"},
		{"10.0.0.2:443", "198.51.100.1, 10.0.0.3"},
		{"10.0.0.2:443", "198.51.100.1, 10.0.0.3, 10.0.0.4"},
		{"10.0.0.2:443", "spoofed, 198.51.100.1"},
		{"10.0.0.2:443", "198.51.100.1, junk, 10.0.0.3"},
		{"10.0.0.2:443", "[2001:db8::1]:8080, 10.0.0.3:9000"},
		{"10.0.0.2:443", "[2001:db8::1], ::ffff:10.0.0.3"},
		{"10.0.0.2:443", "fe80::1%eth0"},
		{"10.0.0.2:443", ",,, ,"},
		{"10.0.0.2:443", ""},
		{"[::1]:443", "2001:db8::2"},
		{"[::ffff:10.0.0.2]:443", "198.51.100.1"},
		{"@", "198.51.100.1"},
		{"", ""},
	} {
		f.Add(c.peer, c.xff)
	}
	s := &Service{trusted: []netip.Prefix{
		netip.MustParsePrefix("10.0.0.0/8"),
		netip.MustParsePrefix("::1/128"),
		netip.MustParsePrefix("fd00::/8"),
	}}
	// client is the address the middleware records for a request from peer whose
	// X-Forwarded-For lines are xff.
	client := func(peer string, xff ...string) string {
		var got string
		h := s.Middleware(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) { got = ClientFrom(r.Context()).IP }))
		r := httptest.NewRequest("GET", "/graphql", nil)
		r.RemoteAddr = peer
		for _, v := range xff {
			r.Header.Add("X-Forwarded-For", v)
		}
		h.ServeHTTP(httptest.NewRecorder(), r)
		return got
	}

	f.Fuzz(func(t *testing.T, peer, xff string) {
		lines := strings.Split(xff, "\n") // several header lines
		got := client(peer, lines...)

		ap, err := netip.ParseAddrPort(peer)
		if err != nil {
			if want := NewClient(peer, "").IP; got != want {
				t.Fatalf("RemoteAddr %q that is no address gave %q, want it as it is", peer, got)
			}
			return
		}
		peerIP := ap.Addr().Unmap()
		if !s.isTrusted(peerIP) {
			if got != peerIP.String() {
				t.Fatalf("an untrusted peer %s sent X-Forwarded-For %q and got %q believed", peer, xff, got)
			}
			return
		}
		// Behind a trusted peer the client is the peer or one of the header's hops.
		from := []string{peerIP.String()}
		for hop := range strings.SplitSeq(strings.Join(lines, ","), ",") {
			if addr, ok := parseHop(strings.TrimSpace(hop)); ok {
				from = append(from, addr.String())
			}
		}
		if !slices.Contains(from, got) {
			t.Fatalf("clientIP(%s, %q) = %q: neither the peer nor a hop of the header %v", peer, xff, got, from)
		}
		ip := netip.MustParseAddr(got)
		if s.isTrusted(ip) {
			return // the chain is all proxies (or stops at junk): the last good hop
		}
		// A client that is not a proxy: what was written before its hop cannot move it,
		// and another trusted proxy appending the address it got the request from is
		// still answered with the same client.
		if forged := client(peer, append([]string{"203.0.113.66, junk"}, lines...)...); forged != got {
			t.Fatalf("hops written to the left of %q moved the client from %s to %s", xff, got, forged)
		}
		if further := client("10.0.0.9:443", append(lines, peerIP.String())...); further != got {
			t.Fatalf("one more trusted proxy in front of %s moved the client from %s to %s", peer, got, further)
		}
	})
}
