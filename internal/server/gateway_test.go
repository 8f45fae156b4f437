package server_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wxlogin/wxlogin/internal/testdb"
	"github.com/wxlogin/wxlogin/internal/verify"
)

// shippedNginxConf is the nginx configuration the repository ships for putting
// wxlogin in front of a back end.
const shippedNginxConf = "../../deploy/nginx/wxlogin.conf"

// TestGatewayInFrontOfABackEnd runs the shipped nginx configuration in Debian's nginx,
// over TLS with a certificate of the test's own, in front of wxlogin and a small back
// end that echoes the headers it receives. Through nginx: a logged-in request reaches
// the back end as its user; no token, a bad one, a revoked one and one logged out get
// nginx's 401 and never reach it; headers a client forges never reach it; and the
// address wxlogin records for a session is the client's, not nginx's.
func TestGatewayInFrontOfABackEnd(t *testing.T) {
	nginx := findNginx(t)
	nginxAddr := netip.MustParsePrefix("127.0.0.1/32")
	e := newEnv(t, testdb.Backends(t)[0], func(e *env) { e.trusted = []netip.Prefix{nginxAddr} })
	backend := newEchoBackend(t)
	gw := startNginx(t, nginx, e.instances[0].Listener.Addr().String(), backend.addr())

	// The client connects from 127.0.0.2, so that its address and nginx's differ.
	client := gw.client(t, "127.0.0.2")

	// A login through nginx, with an X-Forwarded-For of the client's own invention.
	body, _ := json.Marshal(map[string]any{"query": loginMutation, "variables": map[string]any{"code": e.fake.IssueCode(bob)}})
	status, _, raw := gw.do(t, client, "POST", "/graphql", map[string]string{"Content-Type": "application/json", "X-Forwarded-For": "203.0.113.9"}, body)
	var login struct {
		Data struct{ Login loginPayload } `json:"data"`
	}
	if err := json.Unmarshal(raw, &login); status != http.StatusOK || err != nil || login.Data.Login.Token == "" {
		t.Fatalf("login through nginx: %d %s", status, raw)
	}
	p := login.Data.Login
	sessions := e.sessions(p.Token)
	if len(sessions) != 1 || sessions[0].IP == nil || *sessions[0].IP != "127.0.0.2" {
		var ips []string
		for _, s := range sessions {
			if s.IP != nil {
				ips = append(ips, *s.IP)
			}
		}
		t.Errorf("the session's address: %v, want the client's 127.0.0.2 (not nginx's 127.0.0.1, nor the forged 203.0.113.9)", ips)
	}

	// A logged-in request reaches the back end as its user, whatever it forges.
	forged := map[string]string{
		"Authorization":           "Bearer " + p.Token,
		"X-Wxlogin-User-Id":       "00000000-0000-0000-0000-000000000001",
		"x-wxlogin-openid":        "oForged",
		"X-Wxlogin-Unionid":       "uForged", // bob has no unionid
		"X-WXLOGIN-SESSION-ID":    "forged",
		"X-Wxlogin-Appid":         "wxforged",
		"X_Wxlogin_User_Id":       "forged-with-underscores",
		"X-Wxlogin-User-Id-Extra": "kept: not one of wxlogin's",
	}
	status, _, _ = gw.do(t, client, "GET", "/api/orders?page=2", forged, nil)
	got := backend.last()
	if status != http.StatusOK || got == nil {
		t.Fatalf("a logged-in request: %d, the back end got %v", status, got)
	}
	want := map[string]string{
		verify.HeaderUserID: p.User.ID, verify.HeaderOpenID: p.User.Openid, verify.HeaderAppID: testAppID,
		verify.HeaderSessionID: sessions[0].ID, verify.HeaderUnionID: "",
	}
	for h, v := range want {
		if vs := got.Header.Values(h); v == "" && len(vs) > 0 || v != "" && (len(vs) != 1 || vs[0] != v) {
			t.Errorf("the back end got %s %q, want %q", h, vs, v)
		}
	}
	for h := range got.Header {
		if strings.Contains(strings.ToLower(h), "wxlogin_") {
			t.Errorf("the back end got the client's %s", h)
		}
	}
	if got.URL != "/api/orders?page=2" || got.Header.Get("Authorization") != "Bearer "+p.Token {
		t.Errorf("the back end got %s with Authorization %q, want the request as sent", got.URL, got.Header.Get("Authorization"))
	}

	// Refused by nginx, never reaching the back end.
	refused := func(what string, header map[string]string) {
		t.Helper()
		before := backend.count()
		status, h, _ := gw.do(t, client, "GET", "/api/orders", header, nil)
		if status != http.StatusUnauthorized || !strings.HasPrefix(h.Get("WWW-Authenticate"), "Bearer") {
			t.Errorf("%s: %d (WWW-Authenticate %q), want 401 from nginx", what, status, h.Get("WWW-Authenticate"))
		}
		if backend.count() != before {
			t.Errorf("%s reached the back end", what)
		}
	}
	refused("no token", nil)
	refused("no token, forged headers", map[string]string{verify.HeaderUserID: p.User.ID, verify.HeaderOpenID: p.User.Openid})
	refused("a malformed token", map[string]string{"Authorization": "Bearer nope"})
	refused("an unknown token", map[string]string{"Authorization": "Bearer " + strings.Repeat("A", 43)})

	// Revoked from another session of the same user, then logged out.
	other := e.mustLogin(0, e.fake.IssueCode(bob))
	for _, s := range e.sessions(other.Token) {
		if !s.Current {
			if r := e.post(0, other.Token, `mutation ($id: ID!) { revokeSession(id: $id) }`, map[string]any{"id": s.ID}); r.Code() != "" {
				t.Fatal(r.Code())
			}
		}
	}
	refused("a revoked token", map[string]string{"Authorization": "Bearer " + p.Token})
	if status, _, _ := gw.do(t, client, "GET", "/api/profile", map[string]string{"Authorization": "Bearer " + other.Token}, nil); status != http.StatusOK {
		t.Fatalf("the other session: %d", status)
	}
	logout, _ := json.Marshal(map[string]any{"query": "mutation { logout }"})
	if status, _, raw := gw.do(t, client, "POST", "/graphql", map[string]string{"Content-Type": "application/json", "Authorization": "Bearer " + other.Token}, logout); status != http.StatusOK || !bytes.Contains(raw, []byte(`"logout":true`)) {
		t.Fatalf("logout through nginx: %d %s", status, raw)
	}
	refused("the request after a logout", map[string]string{"Authorization": "Bearer " + other.Token})
}

// findNginx returns Debian's nginx, or skips (fails under CI=true) without it.
func findNginx(t *testing.T) string {
	for _, p := range []string{"/usr/sbin/nginx", "/usr/bin/nginx"} {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	if p, err := exec.LookPath("nginx"); err == nil {
		return p
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("nginx is not installed (apt-get install nginx): the gateway test must run in CI")
	}
	t.Skip("nginx is not installed (apt-get install nginx)")
	return ""
}

// gateway is a running nginx.
type gateway struct {
	addr  string
	roots *x509.CertPool
}

// startNginx runs nginx with the shipped configuration, its upstreams pointed at
// wxlogin and the back end, its listener on a free port of 127.0.0.1, and a
// certificate made for the test; it stops with the test.
func startNginx(t *testing.T, nginx, wxlogin, backend string) *gateway {
	t.Helper()
	dir := t.TempDir()
	certFile, keyFile, roots := selfSignedCert(t, dir)
	port := freePort(t)

	shipped, err := os.ReadFile(shippedNginxConf)
	if err != nil {
		t.Fatal(err)
	}
	// Only the site-specific lines change; the test fails when one is not there, so
	// that the configuration it runs stays the one shipped.
	conf := string(shipped)
	for _, r := range []struct{ old, new string }{
		{"server 127.0.0.1:8080;", "server " + wxlogin + ";"},
		{"server 127.0.0.1:9000;", "server " + backend + ";"},
		{"listen 443 ssl;", fmt.Sprintf("listen 127.0.0.1:%d ssl;", port)},
		{"/etc/nginx/tls/api.example.com.crt", certFile},
		{"/etc/nginx/tls/api.example.com.key", keyFile},
	} {
		if strings.Count(conf, r.old) != 1 {
			t.Fatalf("%s no longer has %q once: update the test's substitutions", shippedNginxConf, r.old)
		}
		conf = strings.Replace(conf, r.old, r.new, 1)
	}
	if err := os.WriteFile(filepath.Join(dir, "wxlogin.conf"), []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	// What a distribution's nginx.conf would hold around conf.d/, in the test's folder.
	main := fmt.Sprintf(`daemon off;
master_process off;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log info;
events { worker_connections 256; }
http {
    access_log %[1]s/access.log;
    client_body_temp_path %[1]s/body;
    proxy_temp_path %[1]s/proxy;
    fastcgi_temp_path %[1]s/fastcgi;
    uwsgi_temp_path %[1]s/uwsgi;
    scgi_temp_path %[1]s/scgi;
    include %[1]s/wxlogin.conf;
}
`, dir)
	if err := os.WriteFile(filepath.Join(dir, "nginx.conf"), []byte(main), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(nginx, "-p", dir, "-c", filepath.Join(dir, "nginx.conf"), "-e", filepath.Join(dir, "error.log"))
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Signal(os.Interrupt)
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			log, _ := os.ReadFile(filepath.Join(dir, "error.log"))
			t.Logf("nginx's output:\n%s\nits error log:\n%s", out.String(), log)
		}
	})
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		select {
		case err := <-exited:
			log, _ := os.ReadFile(filepath.Join(dir, "error.log"))
			t.Fatalf("nginx exited: %v\n%s\n%s", err, out.String(), log)
		default:
		}
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("nginx did not listen on %s: %s", addr, out.String())
		}
	}
	return &gateway{addr: addr, roots: roots}
}

// client is an HTTPS client of the gateway that connects from the address local, and
// trusts only the test's certificate.
func (g *gateway) client(t *testing.T, local string) *http.Client {
	dialer := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(local)}, Timeout: 5 * time.Second}
	return &http.Client{
		Timeout: 10 * time.Second,
		Transport: &http.Transport{
			DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
				return dialer.DialContext(ctx, network, g.addr)
			},
			TLSClientConfig: &tls.Config{RootCAs: g.roots, ServerName: "api.example.com"},
		},
	}
}

// do sends a request through the gateway and returns the status, headers and body.
func (g *gateway) do(t *testing.T, c *http.Client, method, path string, header map[string]string, body []byte) (int, http.Header, []byte) {
	t.Helper()
	req, _ := http.NewRequest(method, "https://api.example.com"+path, bytes.NewReader(body))
	for k, v := range header {
		req.Header[k] = []string{v} // as written: the forged names keep their spelling
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s through nginx: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, raw
}

// echoBackend is the team's own service behind the gateway: it records each request.
type echoBackend struct {
	srv *httptest.Server
	mu  sync.Mutex
	got []echoed
}

type echoed struct {
	URL    string
	Header http.Header
}

func newEchoBackend(t *testing.T) *echoBackend {
	b := &echoBackend{}
	b.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b.mu.Lock()
		b.got = append(b.got, echoed{URL: r.URL.RequestURI(), Header: r.Header.Clone()})
		b.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(r.Header)
	}))
	t.Cleanup(b.srv.Close)
	return b
}

func (b *echoBackend) addr() string { return b.srv.Listener.Addr().String() }

func (b *echoBackend) count() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.got)
}

func (b *echoBackend) last() *echoed {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.got) == 0 {
		return nil
	}
	return &b.got[len(b.got)-1]
}

// selfSignedCert writes a certificate for api.example.com and its key into dir.
func selfSignedCert(t *testing.T, dir string) (certFile, keyFile string, roots *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "api.example.com"},
		DNSNames:              []string{"api.example.com"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IsCA:                  true,
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	roots = x509.NewCertPool()
	roots.AddCert(cert)
	return certFile, keyFile, roots
}

// freePort is a TCP port of 127.0.0.1 nothing listens on, a moment ago.
func freePort(t *testing.T) int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}
